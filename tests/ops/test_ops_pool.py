"""The Redis connection pool waits for a released connection instead of refusing a caller
(issue 11, item 5: 101 concurrent calls on a 100-connection pool used to fail with `Too many
connections`), and gives up after its timeout when none is released."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from conveyor.brokers.redis.server import make_client
from tests.support.env import REDIS_URL, new_prefix


async def test_callers_beyond_the_pool_wait_for_a_connection() -> None:
    client = make_client(REDIS_URL, timeout_s=3.0, max_connections=4)
    try:
        answers = await asyncio.gather(*(client.ping() for _ in range(200)))
        assert answers == [True] * 200
        assert len(client.connection_pool._in_use_connections) == 0
    finally:
        await client.aclose()


async def test_a_caller_gives_up_after_the_timeout_when_nothing_is_released() -> None:
    client = make_client(REDIS_URL, timeout_s=0.3, read_timeout_s=5.0, max_connections=1)
    key = f"{new_prefix()}:never"

    async def hold() -> object:
        return await client.blpop([key], timeout=2)

    try:
        holder = asyncio.create_task(hold())  # holds the only one
        await asyncio.sleep(0.1)
        start = time.monotonic()
        with pytest.raises(RedisConnectionError, match="no Redis connection free"):
            await client.ping()
        assert time.monotonic() - start < 2.0
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        assert await client.ping()  # the connection came back
    finally:
        await client.aclose()
