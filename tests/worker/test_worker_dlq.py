"""The DLQ worker inside a running Worker (as `run_worker` registers it): a dead job's
`on_dead` hook runs, its type's policy redrives it, and the bound leaves it dead at last."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.errors import PermanentError
from conveyor.handlers import JobContext, Registry
from conveyor.jobs import Job, JobState
from conveyor.worker import Worker
from conveyor.worker.dlq import DlqWorker
from tests.support.inproc import make_settings
from tests.support.waits import wait_for_state, wait_true
from tests.worker.worker_helpers import QUEUE


@asynccontextmanager
async def _running(broker: RedisBroker, registry: Registry) -> AsyncIterator[DlqWorker]:
    dlq = DlqWorker(registry)
    worker = Worker(
        broker, queues=[QUEUE], concurrency=2, registry=registry, settings=make_settings(),
        maintenance_hooks=[dlq],
    )
    task = asyncio.create_task(worker.run())
    try:
        yield dlq
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


def _outcomes(job: Job) -> list[str]:
    return [h.outcome for h in job.history]


async def test_a_dead_job_is_reported_then_redriven_by_its_policy(
    broker: RedisBroker, registry: Registry, client: AsyncConveyor
) -> None:
    deaths: list[str] = []
    runs: list[int] = []

    async def notify(job: Job) -> None:
        deaths.append(job.id)

    @registry.handler("flaky", max_attempts=1, redrive_after=0.05, max_redrives=1,
                      on_dead=notify)
    async def flaky(payload: None, ctx: JobContext) -> str:
        runs.append(ctx.attempt)
        if len(runs) == 1:
            raise PermanentError("downstream said no")
        return "ok"

    job = await client.enqueue("flaky", queue=QUEUE)
    async with _running(broker, registry):
        done = await wait_for_state(client, job.id, {JobState.SUCCEEDED})
        await wait_true(lambda: deaths == [job.id])
    assert _outcomes(done) == ["dead", "redriven", "succeeded"]
    assert done.history[1].worker == "policy"


async def test_after_max_redrives_the_job_stays_dead(
    broker: RedisBroker, registry: Registry, client: AsyncConveyor
) -> None:
    deaths: list[str] = []

    @registry.handler("doomed", max_attempts=1, redrive_after=0, max_redrives=2,
                      on_dead=lambda job: deaths.append(job.id))
    async def doomed(payload: None) -> None:
        raise PermanentError("never works")

    job = await client.enqueue("doomed", queue=QUEUE)
    async with _running(broker, registry) as dlq:
        await wait_true(lambda: len(deaths) == 3)  # the first death and two redriven ones
        passes = dlq.passes
        await wait_true(lambda: dlq.passes >= passes + 3)  # later passes leave it alone
    dead = await client.get(job.id)
    assert dead.state is JobState.DEAD
    assert _outcomes(dead) == ["dead", "redriven", "dead", "redriven", "dead"]
    assert deaths == [job.id] * 3
    assert dlq.redriven == 2
