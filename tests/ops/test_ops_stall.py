"""A stalled Redis (issue 11, item 6): SIGSTOP or `CLIENT PAUSE` used to hang requests for
20-50 s before the 503. Every wait on Redis is bounded by CONVEYOR_REDIS_TIMEOUT_S now, and
`/readyz` answers within a second whatever Redis does. Each test owns its redis-server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from conveyor.client import Conveyor
from conveyor.errors import BrokerUnavailable
from conveyor.settings import Settings
from conveyor.web import create_app
from tests.ops.ops_support import StartServer, stall, unstall
from tests.support.asgi import serve
from tests.support.redis_server import RedisServer
from tests.support.typed import redis_command

#: the default CONVEYOR_REDIS_TIMEOUT_S
DEFAULT_TIMEOUT_S = Settings().redis_timeout_s
#: a shorter one, for the tests that stall many calls
TIMEOUT_S = 1.0
#: /readyz answers within 1 s by design; slack for a loaded host
READY_BOUND_S = 1.5


def bound_s(timeout_s: float) -> float:
    """A stalled call fails within this: a pool wait and a read timeout, and slack for a
    loaded test host (it hung 20-50 s before)."""
    return 2 * timeout_s + 1.5


def _settings(server: RedisServer, **kw: Any) -> Settings:
    return Settings(broker_url=server.url, key_prefix="cvt-stall", **kw)


@asynccontextmanager
async def _api(server: RedisServer, **kw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(settings=_settings(server, **kw))) as http:
        assert (await http.post("/v1/jobs", json={"type": "fake"})).status_code == 201
        yield http


async def _pause_clients(server: RedisServer) -> None:
    """`CLIENT PAUSE 12000 ALL` from a connection of its own: every client is held 12 s."""
    admin = Redis.from_url(server.url)
    try:
        await redis_command(admin, "CLIENT", "PAUSE", "12000", "ALL")
    finally:
        await admin.aclose()


async def _timed(call: Awaitable[Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = await call
    return result, time.monotonic() - start


Fault = Callable[[RedisServer], Awaitable[None]]


async def _sigstop(server: RedisServer) -> None:
    stall(server)


@pytest.mark.parametrize("fault", [_sigstop, _pause_clients], ids=["sigstop", "client-pause"])
async def test_requests_fail_fast_and_readyz_answers_within_a_second(
    redis_servers: StartServer, fault: Fault
) -> None:
    """With the default timeout: a few seconds for a request, under one for /readyz."""
    assert 1 <= DEFAULT_TIMEOUT_S <= 5
    server = await redis_servers()
    async with _api(server) as http:
        await fault(server)
        ready, ready_s = await _timed(http.get("/readyz"))
        enq, enq_s = await _timed(http.post("/v1/jobs", json={"type": "fake"}))
        listed, list_s = await _timed(http.get("/v1/queues"))
        ready_again, ready_again_s = await _timed(http.get("/readyz"))
        print(f"STALL-FIGURES {fault.__name__[1:]}: readyz {ready_s:.2f}s, enqueue {enq_s:.2f}s,"
              f" list {list_s:.2f}s, readyz again {ready_again_s:.2f}s")
        for response in (ready, enq, listed, ready_again):
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "broker_unavailable"
            assert response.headers["Retry-After"]
        assert ready_s < READY_BOUND_S and ready_again_s < READY_BOUND_S
        assert enq_s < bound_s(DEFAULT_TIMEOUT_S) and list_s < bound_s(DEFAULT_TIMEOUT_S)
        unstall(server)
        deadline = time.monotonic() + 20  # a client pause ends by itself
        while (await http.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "the API did not recover"
            await asyncio.sleep(0.1)
        assert (await http.post("/v1/jobs", json={"type": "fake"})).status_code == 201


async def test_concurrent_requests_during_a_stall_all_fail_fast(
    redis_servers: StartServer,
) -> None:
    """More requests than the pool has connections: those waiting for a connection give up
    within the timeout too."""
    server = await redis_servers()
    async with _api(server, redis_timeout_s=TIMEOUT_S) as http:
        stall(server)
        answers, took = await _timed(asyncio.gather(
            *(http.post("/v1/jobs", json={"type": "fake"}) for _ in range(150))))
        print(f"STALL-FIGURES 150 concurrent enqueues: {took:.2f}s")
        assert {r.status_code for r in answers} == {503}
        assert took < 2 * bound_s(TIMEOUT_S)


async def test_the_sync_client_fails_fast_on_a_stalled_redis(
    redis_servers: StartServer,
) -> None:
    server = await redis_servers()
    with Conveyor.from_url(settings=_settings(server, redis_timeout_s=TIMEOUT_S)) as cv:
        cv.enqueue("fake")
        stall(server)
        start = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await asyncio.to_thread(cv.enqueue, "fake")
        took = time.monotonic() - start
        print(f"STALL-FIGURES sync enqueue: {took:.2f}s")
        assert took < bound_s(TIMEOUT_S)
        unstall(server)
        cv.enqueue("fake")
