"""Helpers shared by the worker tests (a plain module: test files import it by name)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.jobs import Job, JobState
from conveyor.settings import Settings
from conveyor.worker import Worker

REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUE = "q"

#: the `run_worker` fixture: `async with run_worker(concurrency=4) as worker: ...`
RunWorker = Callable[..., Any]
#: the `own_redis` fixture: `await own_redis("--proto-max-bulk-len", "1mb")` starts a private
#: redis-server with that config and returns a connected broker on it
OwnRedis = Callable[..., Awaitable[Any]]


def make_settings(**overrides: Any) -> Settings:
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


async def wait_for_state(
    client: AsyncConveyor, job_id: str, states: Collection[JobState], timeout_s: float = 10.0
) -> Job:
    """Poll until the job reaches one of `states`; fail with its last state past the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        job = await client.get(job_id)
        if job.state in states:
            return job
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} still {job.state} after {timeout_s}s: {job!r}")
        await asyncio.sleep(0.01)


async def wait_until(pred: Callable[[], bool], timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not pred():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """Run `worker` in a task for the block; stop it (grace period included) after."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        if not worker.stopping:  # a second stop() would skip the grace period
            worker.stop()
        await asyncio.wait_for(task, 15)


@asynccontextmanager
async def redis_broker(key_prefix: str) -> AsyncIterator[RedisBroker]:
    """A connected broker on the shared Redis; every key under `key_prefix` deleted after."""
    b = RedisBroker.from_url(REDIS_URL, key_prefix=key_prefix)
    await b.connect()
    try:
        yield b
    finally:
        keys = [k async for k in b.client.scan_iter(match=f"{key_prefix}:*", count=1000)]
        if keys:
            await b.client.delete(*keys)
        await b.close()
