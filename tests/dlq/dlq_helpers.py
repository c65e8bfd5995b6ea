"""Helpers of the DLQ tests (a plain module: test files import it by name)."""

from __future__ import annotations

import asyncio
import time

from conveyor.brokers.base import Broker, FailItem
from conveyor.client import AsyncConveyor
from conveyor.jobs import JobState

Q = "dq"
BUDGET_S = 10.0


async def kill(client: AsyncConveyor, n: int = 1, *, type: str = "t", code: str = "e",
               queue: str = Q) -> list[str]:
    """n jobs made DEAD together through the broker (fetch + fail without retry)."""
    ids = [(await client.enqueue(type, i, queue=queue, max_attempts=3)).id for i in range(n)]
    batch = await client.broker.fetch(queue, n, "w", 60_000)
    assert sorted(d.job_id for d in batch.deliveries) == sorted(ids)
    items = [FailItem(d.job_id, d.token, code, "failed") for d in batch.deliveries]
    assert await client.broker.fail(items) == [JobState.DEAD] * n
    return ids


async def died_ms(client: AsyncConveyor, job_id: str) -> int:
    job = await client.get(job_id)
    assert job.finished_at is not None
    return int(job.finished_at.timestamp() * 1000)


async def wait_broker_time(broker: Broker, at_least_ms: int) -> None:
    deadline = time.monotonic() + BUDGET_S
    while await broker.now_ms() < at_least_ms:
        assert time.monotonic() < deadline, "broker clock did not advance"
        await asyncio.sleep(0.005)


async def states(client: AsyncConveyor, ids: list[str]) -> list[JobState]:
    return [(await client.get(i)).state for i in ids]
