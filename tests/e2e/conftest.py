"""Fixtures of the end-to-end tests: a key prefix of their own on the real Redis, a client, and
a factory that starts real worker processes and always stops them. Every test runs twice: on
the Redis at 127.0.0.1:6379 and on the local Redis Cluster (`redis-cluster`, skipped with the
reason when none can be started).

Teardown order (reverse of set-up): workers stopped (SIGTERM, SIGKILL after a bounded wait),
their logs printed (pytest shows them when the test fails), then every key of the prefix
deleted and the client closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from conveyor.brokers.base import WorkerInfo
from conveyor.client import AsyncConveyor
from tests.e2e.e2e_support import QUEUE, START_TIMEOUT_S, StartWorker, WorkerProcess, spawn_worker
from tests.support.cluster import LocalCluster
from tests.support.env import REDIS_URL
from tests.support.keys import delete_prefix
from tests.support.waits import wait_until


@pytest.fixture(params=["redis", "redis-cluster"])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return REDIS_URL
    cluster: LocalCluster = request.getfixturevalue("redis_cluster")
    return cluster.url


@pytest.fixture
async def client(prefix: str, broker_url: str) -> AsyncIterator[AsyncConveyor]:
    c = AsyncConveyor.from_url(broker_url, key_prefix=prefix)
    await c.connect()
    try:
        yield c
    finally:
        await c.close()
        await delete_prefix(prefix, broker_url)


async def _stop(worker: WorkerProcess) -> None:
    try:
        await worker.stop()
    finally:
        print(worker.logs())


@pytest.fixture
async def start_worker(
    client: AsyncConveyor, prefix: str, tmp_path: Path, broker_url: str,
) -> AsyncIterator[StartWorker]:
    started: list[WorkerProcess] = []

    async def start(
        *, concurrency: int = 1, lease_s: float = 1.5, grace_s: float = 5.0,
        queues: str = QUEUE, app: str | None = None, pythonpath: Path | None = None,
        args: Sequence[str] = (),
    ) -> WorkerProcess:
        worker = spawn_worker(
            f"worker{len(started) + 1}", tmp_path=tmp_path, prefix=prefix, queues=queues,
            concurrency=concurrency, lease_s=lease_s, grace_s=grace_s, app=app,
            pythonpath=pythonpath, broker_url=broker_url, args=args,
        )
        started.append(worker)

        async def registered() -> WorkerInfo | None:
            if not worker.running():
                raise AssertionError(
                    f"{worker.name} exited with {worker.proc.returncode} before registering\n"
                    + worker.logs()
                )
            return next((i for i in await client.workers() if worker.is_me(i)), None)

        worker.info = await wait_until(
            registered, f"{worker.name} to register", timeout_s=START_TIMEOUT_S
        )
        return worker

    try:
        yield start
    finally:
        await asyncio.gather(*(_stop(w) for w in started))
