"""`ctx.progress` in a real Worker (issue 17): async and sync handlers report progress;
reports are throttled (a burst is one write now and one at the end) and the last value
always lands, before the outcome; a stale report changes nothing. A process-isolated
handler's reports come from its child the same way, on both brokers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import tests.worker.isolated_app as isolated_app
from conveyor.brokers.base import LOG_START, Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor
from conveyor.handlers import JobContext, Registry
from conveyor.jobs import TERMINAL_STATES, JobState
from tests.support.waits import wait_for_state
from tests.worker.worker_helpers import QUEUE, RunWorker


async def progress_events(broker: Broker, job_id: str) -> list[Any]:
    page = await broker.read_events(QUEUE, LOG_START, 1000)
    return [e.progress for e in page.events if e.job_id == job_id and e.event == "progress"]


async def test_a_burst_of_reports_is_throttled_and_the_last_one_lands(
    broker: RedisBroker, client: AsyncConveyor, registry: Registry, run_worker: RunWorker,
) -> None:
    @registry.handler("burst", max_attempts=1)
    async def burst(payload: Any, ctx: JobContext) -> str:
        for i in range(1, 101):
            ctx.progress(i / 100, f"step {i}")
        return "done"

    @registry.handler("burst.sync", max_attempts=1)
    def burst_sync(payload: Any, ctx: JobContext) -> str:
        for i in range(1, 51):
            ctx.progress(i, None)
        return "done"

    jobs = [await client.enqueue("burst", None, queue=QUEUE),
            await client.enqueue("burst.sync", None, queue=QUEUE)]
    async with run_worker():
        done = [await wait_for_state(client, j.id, TERMINAL_STATES) for j in jobs]
    assert [j.state for j in done] == [JobState.SUCCEEDED] * 2
    first, second = done
    assert first.progress is not None
    assert (first.progress.value, first.progress.message) == (1.0, "step 100")
    assert second.progress is not None and second.progress.value == 50
    for job in done:
        reports = await progress_events(broker, job.id)
        assert 1 <= len(reports) <= 2, reports  # one now, the last one at the end
        assert reports[-1] == job.progress


async def test_a_bad_report_fails_the_handler_not_the_worker(
    client: AsyncConveyor, registry: Registry, run_worker: RunWorker,
) -> None:
    @registry.handler("bad.progress", max_attempts=1)
    async def bad(payload: Any, ctx: JobContext) -> None:
        ctx.progress(float("nan"))

    job = await client.enqueue("bad.progress", None, queue=QUEUE)
    async with run_worker():
        done = await wait_for_state(client, job.id, TERMINAL_STATES)
    assert done.state == JobState.DEAD and done.last_error is not None
    assert done.last_error.code == "validation_error" and done.progress is None


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
async def test_a_process_isolated_handler_reports_progress_from_its_child(
    kind: str, broker: RedisBroker, registry: Registry, run_worker: RunWorker, tmp_path: Path,
) -> None:
    registry.handler("iso.steps", max_attempts=1, isolation="process")(isolated_app.steps)
    target: Broker = broker if kind == "redis" else SqliteBroker(tmp_path / "progress.db")
    async with AsyncConveyor(target, registry=registry) as client:
        job = await client.enqueue("iso.steps", {"steps": 200}, queue=QUEUE)
        bad = await client.enqueue("iso.steps", {"steps": 1, "bad": -1}, queue=QUEUE)
        async with run_worker(on=target):
            done = await wait_for_state(client, job.id, TERMINAL_STATES, timeout_s=30)
            failed = await wait_for_state(client, bad.id, TERMINAL_STATES, timeout_s=30)
        assert done.state == JobState.SUCCEEDED
        assert isinstance(done.result, int) and done.result != os.getpid()  # ran in a child
        assert done.progress is not None
        assert (done.progress.value, done.progress.message) == (
            1.0, f"step 200 (pid {done.result})")  # the last report landed
        reports = await progress_events(target, job.id)
        assert 1 <= len(reports) <= 2, reports  # a burst of 200: one now, the last at the end
        assert reports[-1] == done.progress
        # a bad value raises in the child's handler: the job fails, its good report stays
        assert failed.state == JobState.DEAD and failed.last_error is not None
        assert failed.last_error.code == "validation_error"
        assert failed.progress is not None and failed.progress.value == 1.0
