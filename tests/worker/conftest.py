"""Fixtures for the worker tests: a real Redis broker under a unique key prefix, a client,
a private handler registry, and a helper that runs a Worker in-process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from worker_helpers import QUEUE, REDIS_URL, RunWorker, make_settings

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.handlers import Registry
from conveyor.settings import Settings
from conveyor.worker import Worker


@pytest.fixture
def key_prefix() -> str:
    return f"cvt-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def broker(key_prefix: str) -> AsyncIterator[RedisBroker]:
    b = RedisBroker.from_url(REDIS_URL, key_prefix=key_prefix)
    await b.connect()
    try:
        yield b
    finally:
        keys = [k async for k in b.client.scan_iter(match=f"{key_prefix}:*", count=1000)]
        if keys:
            await b.client.delete(*keys)
        await b.close()


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def client(broker: RedisBroker, registry: Registry) -> AsyncConveyor:
    return AsyncConveyor(broker, registry=registry)



@pytest.fixture
def run_worker(broker: RedisBroker, registry: Registry) -> RunWorker:
    """`async with run_worker(concurrency=4, settings=...) as w:` runs a Worker until exit."""

    @asynccontextmanager
    async def _run(
        *, queues: list[str] | None = None, concurrency: int = 4,
        settings: Settings | None = None,
    ) -> AsyncIterator[Worker]:
        worker = Worker(
            broker, queues=queues or [QUEUE], concurrency=concurrency, registry=registry,
            settings=settings or make_settings(),
        )
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            if not worker.stopping:  # a second stop() would skip the grace period
                worker.stop()
            await asyncio.wait_for(task, 15)

    return _run
