"""Cancelling a RUNNING job through a real worker (Redis): the worker learns of the request
from its heartbeat's reply, stops the handler (an async one is cancelled; a sync one sees
`ctx.cancelled`) and ends the job CANCELLED itself, whatever the handler returned."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import tests.worker.isolated_app as isolated_app
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.handlers import JobContext, Registry
from conveyor.ids import split_job_id
from conveyor.jobs import Job, JobState
from tests.support.inproc import make_settings
from tests.support.waits import wait_for_state, wait_true
from tests.worker.worker_helpers import QUEUE, RunWorker

DONE = {JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED}


def fast_beats() -> Any:
    return make_settings(heartbeat_interval_s=0.05)


async def started(client: AsyncConveyor, job_id: str, flag: threading.Event) -> Job:
    await wait_true(flag.is_set)
    job = await client.get(job_id)
    assert job.state == JobState.RUNNING
    return job


def assert_cancelled_by(job: Job, actor: str, worker_id: str) -> None:
    assert job.state == JobState.CANCELLED, job
    assert job.result is None
    assert job.last_error is not None and job.last_error.code == "cancelled"
    last = job.history[-1]
    assert (last.outcome, last.error_code, last.worker) == ("cancelled", "cancelled", worker_id)
    assert last.message is not None and actor in last.message


async def test_an_async_handler_is_cancelled(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    began, saw_cancel = threading.Event(), threading.Event()

    @registry.handler("long.async")
    async def long_async(payload: None) -> str:
        began.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            saw_cancel.set()
            raise
        return "finished"

    job = await client.enqueue("long.async", queue=QUEUE)
    async with run_worker(settings=fast_beats()) as worker:
        running = await started(client, job.id, began)
        assert running.worker == worker.worker_id
        asked = await client.cancel(job.id, actor="ops-alice")
        assert asked.state == JobState.RUNNING and asked.cancel_requested
        done = await wait_for_state(client, job.id, DONE)
    assert saw_cancel.is_set()
    assert_cancelled_by(done, "ops-alice", worker.worker_id)


async def test_a_sync_handler_sees_ctx_cancelled_and_returns(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    began, stopped = threading.Event(), threading.Event()

    @registry.handler("long.sync")
    def long_sync(payload: None, ctx: JobContext) -> str:
        began.set()
        deadline = time.monotonic() + 30
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        if ctx.cancelled:
            stopped.set()
        return "partial"

    job = await client.enqueue("long.sync", queue=QUEUE)
    async with run_worker(settings=fast_beats()) as worker:
        await started(client, job.id, began)
        await client.cancel(job.id, actor="ops-bob")
        done = await wait_for_state(client, job.id, DONE)
    assert stopped.is_set()
    assert_cancelled_by(done, "ops-bob", worker.worker_id)


async def test_a_sync_handler_that_ignores_it_is_ended_cancelled_when_it_returns(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    began, go_on = threading.Event(), threading.Event()
    seen: list[bool] = []

    @registry.handler("stubborn.sync")
    def stubborn(payload: None, ctx: JobContext) -> str:
        began.set()
        go_on.wait(30)
        seen.append(ctx.cancelled)
        return "done anyway"

    job = await client.enqueue("stubborn.sync", queue=QUEUE)
    async with run_worker(settings=fast_beats()) as worker:
        await started(client, job.id, began)
        await client.cancel(job.id, actor="ops-carol")
        # the worker heard of it (the handler's ctx says so) but the job runs on meanwhile
        await wait_true(lambda: any(s.cancel_event.is_set()
                                     for s in worker._in_flight.values()))
        assert (await client.get(job.id)).state == JobState.RUNNING
        go_on.set()
        done = await wait_for_state(client, job.id, DONE)
    assert seen == [True]
    assert_cancelled_by(done, "ops-carol", worker.worker_id)


async def test_an_async_handler_that_swallows_the_cancel_is_still_ended(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    began = threading.Event()

    @registry.handler("swallow.async")
    async def swallow(payload: None) -> str:
        began.set()
        with contextlib.suppress(asyncio.CancelledError):  # ignores it, returns as if fine
            await asyncio.sleep(60)
        return "ignored"

    job = await client.enqueue("swallow.async", queue=QUEUE)
    async with run_worker(settings=fast_beats()) as worker:
        await started(client, job.id, began)
        await client.cancel(job.id, actor="ops-dan")
        done = await wait_for_state(client, job.id, DONE)
        # the worker goes on taking jobs after it
        other = await client.enqueue("swallow.async", queue=QUEUE)
        began.clear()
        await wait_true(began.is_set)
        await client.cancel(other.id)
        assert (await wait_for_state(client, other.id, DONE)).state == JobState.CANCELLED
    assert_cancelled_by(done, "ops-dan", worker.worker_id)


async def test_a_job_that_finishes_before_the_worker_hears_succeeds(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    """No heartbeat comes before it ends: the request loses the race and the job SUCCEEDS
    (the fence: `cancel_running` would need the request's delivery to still be running)."""
    began, go_on = threading.Event(), threading.Event()

    @registry.handler("quick.sync")
    def quick(payload: None) -> int:
        began.set()
        go_on.wait(30)
        return 7

    job = await client.enqueue("quick.sync", queue=QUEUE)
    async with run_worker(settings=make_settings(heartbeat_interval_s=30.0)):
        await started(client, job.id, began)
        await client.cancel(job.id)
        go_on.set()
        done = await wait_for_state(client, job.id, DONE)
    assert done.state == JobState.SUCCEEDED and done.result == 7


async def test_a_worker_that_lost_the_lease_cannot_end_the_job(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker, broker: RedisBroker
) -> None:
    """Cancel requested, then the lease moves to another delivery (written here as the
    token a re-delivery would set): the old holder's handler returns, and the job is left
    to its new holder, not ended CANCELLED by the stale worker."""
    began, go_on, returned = threading.Event(), threading.Event(), threading.Event()

    @registry.handler("stale.sync")
    def stale(payload: None, ctx: JobContext) -> str:
        began.set()
        go_on.wait(30)
        returned.set()
        return "late"

    job = await client.enqueue("stale.sync", queue=QUEUE)
    queue, uid = split_job_id(job.id)
    async with run_worker(settings=fast_beats()) as worker:
        await started(client, job.id, began)
        await client.cancel(job.id, actor="ops-eve")
        await wait_true(lambda: any(s.cancel_event.is_set()
                                     for s in worker._in_flight.values()))
        await broker.client.hset(broker.keys.queue(queue).job(uid), "token", "other.1")
        await wait_true(lambda: worker.in_flight == 0)  # lease lost: the slot is dropped
        go_on.set()
        await wait_true(returned.is_set)
    after = await client.get(job.id)
    assert after.state == JobState.RUNNING  # the new holder's, untouched
    assert not after.cancel_requested  # the request bound the old delivery
    assert all(h.outcome != "cancelled" for h in after.history)


async def test_a_process_isolated_handler_is_killed(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker, tmp_path: Path
) -> None:
    registry.handler("iso.hang.cancel", max_attempts=1, isolation="process")(isolated_app.hang)
    pidfile = tmp_path / "pid"
    job = await client.enqueue("iso.hang.cancel", {"pidfile": str(pidfile)}, queue=QUEUE)
    async with run_worker(concurrency=1, settings=fast_beats()) as worker:
        await wait_true(pidfile.exists, timeout_s=20)
        await wait_true(lambda: bool(pidfile.read_text()))
        pid = int(pidfile.read_text())
        await client.cancel(job.id, actor="ops-fay")
        done = await wait_for_state(client, job.id, DONE, timeout_s=20)
        await wait_true(lambda: _gone(pid), timeout_s=5)  # the child was killed
        # its slot comes back once the worker has seen the child go (not at the same instant)
        await wait_true(lambda: worker.free_slots == 1, "the slot to come back", timeout_s=10)
    assert_cancelled_by(done, "ops-fay", worker.worker_id)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie until its parent reaps it: gone for our purposes
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return True
