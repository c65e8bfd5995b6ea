"""Fixtures for the worker tests: a real Redis broker under a unique key prefix, a client,
a private handler registry, and a helper that runs a Worker in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from conveyor.brokers.base import Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.handlers import Registry
from conveyor.settings import Settings
from conveyor.worker import Worker
from tests.support.inproc import make_settings, redis_broker, running
from tests.support.redis_server import RedisServer, redis_server_binary
from tests.worker.worker_helpers import QUEUE, OwnRedis, RunWorker


@pytest.fixture
async def broker(prefix: str) -> AsyncIterator[RedisBroker]:
    async with redis_broker(prefix) as b:
        yield b


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def client(broker: RedisBroker, registry: Registry) -> AsyncConveyor:
    return AsyncConveyor(broker, registry=registry)



@pytest.fixture
def run_worker(broker: RedisBroker, registry: Registry) -> RunWorker:
    """`async with run_worker(concurrency=4, settings=..., on=broker) as w:` runs a Worker
    until exit (`on`: another broker than the shared Redis one)."""

    def _run(
        *, queues: list[str] | None = None, concurrency: int = 4,
        settings: Settings | None = None, on: Broker | None = None,
    ) -> AbstractAsyncContextManager[Worker]:
        return running(Worker(
            on or broker, queues=queues or [QUEUE], concurrency=concurrency,
            registry=registry, settings=settings or make_settings(),
        ))

    return _run


@pytest.fixture
async def own_redis(tmp_path: Path, prefix: str) -> AsyncIterator[OwnRedis]:
    """A redis-server of this test's own (free port, temp dir) started with extra config."""
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    servers: list[RedisServer] = []
    brokers: list[RedisBroker] = []

    async def start(*args: str) -> RedisBroker:
        server = RedisServer(tmp_path / f"redis{len(servers)}", args)
        servers.append(server)
        await server.start()
        b = RedisBroker.from_url(server.url, key_prefix=prefix)
        brokers.append(b)
        await b.connect()
        return b

    try:
        yield start
    finally:
        for b in brokers:
            await b.close()
        for server in servers:
            server.stop()
