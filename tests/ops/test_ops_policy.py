"""An evicting Redis noticed while running (issue 11, item 8): the policy used to be checked
only at start, so a Redis restarted (or reconfigured) with `allkeys-lru` evicted jobs while
`/readyz` said ready. Now it is re-checked periodically and on every new connection; while
it is wrong workers take no job (and say so), the API refuses writes with
`broker_misconfigured` and `/readyz` fails; all resumes once it is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

import conveyor.handlers  # noqa: F401  (the built-in `fake` type)
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.redis.server import make_client
from conveyor.client import AsyncConveyor
from conveyor.jobs import JobState
from conveyor.settings import Settings
from conveyor.web import create_app
from conveyor.worker import Worker
from tests.ops.ops_support import StartServer
from tests.support.asgi import error_of, serve
from tests.support.redis_server import RedisServer

PREFIX = "cvt-policy"
CHECK_S = 0.2
BUDGET_S = 15.0


async def until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + BUDGET_S
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.05)


async def _set_policy(server: RedisServer, policy: str) -> None:
    admin = Redis.from_url(server.url)
    try:
        await admin.config_set("maxmemory-policy", policy)
    finally:
        await admin.aclose()


def _settings(server: RedisServer, **kw: Any) -> Settings:
    return Settings(broker_url=server.url, key_prefix=PREFIX, reap_interval_s=0.2,
                    log_format="text", **kw)


@asynccontextmanager
async def _system(
    server: RedisServer, **kw: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncConveyor, Worker]]:
    """The API, a worker (in this process) and an unchecked client for planting jobs."""
    settings = _settings(server, **kw)
    broker = RedisBroker.from_url(server.url, key_prefix=PREFIX, **_broker_kw(settings))
    await broker.connect()
    worker = Worker(broker, queues=["default"], concurrency=2, settings=settings)
    task = asyncio.create_task(worker.run())
    # a producer that skips the check: to show the worker does not take what it finds
    planter = RedisBroker(make_client(server.url, timeout_s=3.0), key_prefix=PREFIX,
                          check_server=False)
    await planter.connect()
    try:
        async with serve(create_app(settings=settings)) as http:
            yield http, AsyncConveyor(planter), worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)
        await broker.close()
        await planter.close()


def _broker_kw(settings: Settings) -> dict[str, Any]:
    return {"timeout_s": settings.redis_timeout_s,
            "policy_check_s": settings.redis_check_interval_s}


async def _refused(http: httpx.AsyncClient) -> bool:
    r = await http.post("/v1/jobs", json={"type": "fake"})
    return r.status_code == 503 and error_of(r)["code"] == "broker_misconfigured"


async def test_an_evicting_policy_set_at_run_time_stops_intake_until_fixed(
    redis_servers: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = await redis_servers()
    async with _system(server, redis_check_interval_s=CHECK_S) as (http, planter, _):
        first = (await http.post("/v1/jobs", json={"type": "fake"})).json()
        await until("the first job ran",
                    lambda: _state_is(planter, first["id"], JobState.SUCCEEDED))
        assert (await http.get("/readyz")).status_code == 200

        await _set_policy(server, "allkeys-lru")
        await until("the API refuses writes", lambda: _refused(http))
        refused = await http.post("/v1/jobs", json={"type": "fake"})
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert "allkeys-lru" in error_of(refused)["message"]
        assert error_of(refused)["details"] == {"maxmemory_policy": "allkeys-lru"}
        for path in ("/v1/queues/default/pause", "/v1/queues/default/resume"):
            assert error_of(await http.post(path))["code"] == "broker_misconfigured"
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and error_of(ready)["code"] == "broker_misconfigured"
        assert (await http.get("/v1/queues")).status_code == 200  # reads still answer

        async def worker_stopped() -> bool:
            return "broker_misconfigured_not_fetching" in caplog.text

        # the worker notices on its own check, which may come after the API's
        await until("the worker stops fetching", worker_stopped)
        planted = await planter.enqueue("fake")
        await asyncio.sleep(1.0)  # several fetch attempts and policy checks
        assert (await planter.get(planted.id)).state == JobState.QUEUED
        assert "broker_misconfigured_not_fetching" in caplog.text

        await _set_policy(server, "noeviction")
        await until("the worker fetches again",
                    lambda: _state_is(planter, planted.id, JobState.SUCCEEDED))
        assert "broker_configuration_fixed" in caplog.text
        assert (await http.post("/v1/jobs", json={"type": "fake"})).status_code == 201
        assert (await http.get("/readyz")).status_code == 200


async def test_a_redis_restarted_with_an_evicting_policy_is_noticed_on_reconnect(
    redis_servers: StartServer,
) -> None:
    """With the default 30 s period: the new connections after the restart check at once."""
    server = await redis_servers()
    async with _system(server) as (http, planter, _):
        assert (await http.post("/v1/jobs", json={"type": "fake"})).status_code == 201
        server.args = (*server.args, "--maxmemory-policy", "allkeys-lru")
        await server.restart()
        await until("the API refuses writes", lambda: _refused(http))
        planted = await planter.enqueue("fake")
        await asyncio.sleep(1.0)
        assert (await planter.get(planted.id)).state == JobState.QUEUED
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and error_of(ready)["code"] == "broker_misconfigured"


async def _state_is(client: AsyncConveyor, job_id: str, state: JobState) -> bool:
    return (await client.get(job_id)).state == state
