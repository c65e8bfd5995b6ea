"""A Worker run in this process (a task for the block of an `async with`), its settings, and a
broker on the shared Redis confined to a key prefix."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from conveyor.brokers.redis import RedisBroker
from conveyor.settings import Settings
from conveyor.worker import Worker
from tests.support.env import REDIS_URL
from tests.support.keys import delete_prefix

#: how long stopping a worker (its grace period included) may take
STOP_TIMEOUT_S = 15.0


def make_settings(**overrides: Any) -> Settings:
    """Worker settings for tests: short leases and reaping, a short grace period."""
    base: dict[str, Any] = {
        "lease_s": 5.0,
        "reap_interval_s": 0.1,
        "shutdown_grace_s": 1.0,
        "worker_ttl_s": 3.0,
        "log_level": "DEBUG",
        "log_format": "text",
    }
    base.update(overrides)
    return Settings(**base)


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """Run `worker` in a task for the block; stop it (grace period included) after."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        if not worker.stopping:  # a second stop() would skip the grace period
            worker.stop()
        await asyncio.wait_for(task, STOP_TIMEOUT_S)


@asynccontextmanager
async def redis_broker(prefix: str, url: str = REDIS_URL) -> AsyncIterator[RedisBroker]:
    """A connected broker on the shared Redis; every key under `prefix` deleted after."""
    broker = RedisBroker.from_url(url, key_prefix=prefix)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()
        await delete_prefix(prefix, url)
