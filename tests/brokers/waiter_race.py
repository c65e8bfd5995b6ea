"""The waiter race of issue 17, shared by the short conformance test and its `chaos` run:
jobs finish at planned moments and each is waited on from a random moment between 50 ms
before and 50 ms after its finish. No wait may time out or return a wrong result."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from conveyor.brokers.base import AckItem, Broker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import Delivery, Job, JobState

Waiter = Callable[[str, float], Awaitable[Job]]


async def waiter_race(
    broker: Broker, client: AsyncConveyor, *, queue: str, jobs: int, spacing_s: float,
    waiters: list[Waiter], seed: int = 17,
) -> None:
    rng = random.Random(seed)
    results = await client.enqueue_many(
        [JobRequest(type="conf.task", payload={"n": i}, queue=queue) for i in range(jobs)])
    deliveries: list[Delivery] = []
    while len(deliveries) < jobs:
        batch = await broker.fetch(queue, 1000, "race", 600_000)
        deliveries += batch.deliveries
    by_id = {d.job_id: d for d in deliveries}
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1

    async def finish(i: int, job_id: str) -> None:
        await asyncio.sleep(max(start + i * spacing_s - loop.time(), 0))
        assert await broker.ack([AckItem(job_id, by_id[job_id].token, f'{{"n": {i}}}')]) == [True]

    async def wait(i: int, job_id: str) -> tuple[str, Any]:
        at = start + i * spacing_s + rng.uniform(-0.05, 0.05)
        await asyncio.sleep(max(at - loop.time(), 0))
        job = await waiters[i % len(waiters)](job_id, 30.0)
        return job_id, (job.state, job.result)

    ids = [r.job_id for r in results]
    got = await asyncio.gather(*(wait(i, j) for i, j in enumerate(ids)),
                               *(finish(i, j) for i, j in enumerate(ids)))
    answers = dict(a for a in got if a is not None)
    wrong = {j: answers[j] for i, j in enumerate(ids)
             if answers[j] != (JobState.SUCCEEDED, {"n": i})}
    assert not wrong, f"{len(wrong)} wrong answers, e.g. {list(wrong.items())[:3]}"
