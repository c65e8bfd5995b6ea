"""Fixtures for the worker tests: a real Redis broker under a unique key prefix, a client,
a private handler registry, and a helper that runs a Worker in-process."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from worker_helpers import (
    QUEUE,
    OwnRedis,
    RunWorker,
    make_settings,
    redis_broker,
    running,
)

from conveyor.brokers.base import Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.handlers import Registry
from conveyor.settings import Settings
from conveyor.worker import Worker

# The fault suite's test-owned redis-server (own port, own config; 6379 is never touched).
sys.path.append(str(Path(__file__).resolve().parents[1] / "chaos"))
from redis_server import RedisServer, redis_server_binary


@pytest.fixture
def key_prefix() -> str:
    return f"cvt-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def broker(key_prefix: str) -> AsyncIterator[RedisBroker]:
    async with redis_broker(key_prefix) as b:
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
async def own_redis(tmp_path: Path, key_prefix: str) -> AsyncIterator[OwnRedis]:
    """A redis-server of this test's own (free port, temp dir) started with extra config."""
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    servers: list[RedisServer] = []
    brokers: list[RedisBroker] = []

    async def start(*args: str) -> RedisBroker:
        server = RedisServer(tmp_path / f"redis{len(servers)}", args)
        servers.append(server)
        await server.start()
        b = RedisBroker.from_url(server.url, key_prefix=key_prefix)
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
