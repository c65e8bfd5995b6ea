"""The Redis connection pool waits for a released connection instead of refusing a caller
(issue 11, item 5: 101 concurrent calls on a 100-connection pool used to fail with `Too many
connections`), and gives up after its timeout when none is released: it fails while the
only connection is still held, instead of waiting for a release that never comes."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError

from conveyor.brokers.redis.server import SyncWaitingPool, WaitingPool, make_client
from tests.support.env import REDIS_URL, new_prefix
from tests.support.waits import wait_true, wait_until_sync


async def test_callers_beyond_the_pool_wait_for_a_connection() -> None:
    client = make_client(REDIS_URL, timeout_s=3.0, max_connections=4)
    try:
        answers = await asyncio.gather(*(client.ping() for _ in range(200)))
        assert answers == [True] * 200
        assert len(client.connection_pool._in_use_connections) == 0
    finally:
        await client.aclose()


async def test_a_caller_gives_up_after_the_timeout_when_nothing_is_released() -> None:
    client = make_client(REDIS_URL, timeout_s=0.3, read_timeout_s=60.0, max_connections=1)
    key = f"{new_prefix()}:never"
    holding = asyncio.Event()

    async def hold() -> object:
        holding.set()
        return await client.blpop([key], timeout=0)  # blocks until cancelled: never released

    try:
        holder = asyncio.create_task(hold())  # holds the only one
        await holding.wait()
        await wait_true(lambda: len(client.connection_pool._in_use_connections) == 1,
                        "the holder to take the only connection")
        # nothing is ever released: a pool that waited for a release would hang here until
        # the test's timeout; it gives up after its own and says why
        with pytest.raises(RedisConnectionError, match="no Redis connection free"):
            await client.ping()
        assert not holder.done()  # it failed while the connection was still held
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        assert await client.ping()  # the connection came back
    finally:
        await client.aclose()


def test_sync_callers_beyond_the_pool_wait_for_a_connection() -> None:
    """The sync enqueuer's pool (`SyncWaitingPool`): 200 calls from 16 threads on 2
    connections all succeed."""
    client = redis.Redis.from_pool(SyncWaitingPool.from_url(REDIS_URL, max_connections=2,
                                                            timeout=3.0))
    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: client.ping(), range(200)))
        assert answers == [True] * 200
        assert len(client.connection_pool._in_use_connections) == 0
    finally:
        client.close()


def test_a_sync_caller_gives_up_after_the_timeout_when_nothing_is_released() -> None:
    client = redis.Redis.from_pool(SyncWaitingPool.from_url(
        REDIS_URL, max_connections=1, timeout=0.3, socket_timeout=5.0))
    key = f"{new_prefix()}:never"
    holder = threading.Thread(target=lambda: client.blpop([key], timeout=1))
    try:
        holder.start()  # holds the only one
        wait_until_sync(lambda: len(client.connection_pool._in_use_connections) == 1)
        with pytest.raises(RedisConnectionError, match="no Redis connection free"):
            client.ping()
        holder.join()
        assert client.ping()  # the connection came back
    finally:
        holder.join()
        client.close()


async def test_a_caller_cancelled_as_a_connection_frees_passes_it_on() -> None:
    """A caller cancelled in the very step a release wakes it stops (the cancel is not
    lost, as Python 3.11's `asyncio.wait_for` lost it) and the next caller gets the
    connection at once, not after its timeout."""
    client = make_client(REDIS_URL, timeout_s=10.0, max_connections=1)
    pool = cast(WaitingPool, client.connection_pool)
    try:
        held = await pool.get_connection()
        first = asyncio.create_task(pool.get_connection())
        second = asyncio.create_task(pool.get_connection())
        await wait_true(lambda: len(pool._waiters) == 2, "both callers to wait")
        await pool.release(held)  # wakes the first caller...
        first.cancel()  # ...cancelled before it runs
        done, _ = await asyncio.wait({first}, timeout=5)
        assert done and first.cancelled()
        got = await asyncio.wait_for(second, 2)
        await pool.release(got)
    finally:
        await client.aclose()
