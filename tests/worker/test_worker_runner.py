"""A Worker in-process against the real Redis broker: outcomes, retries, timeouts, threads,
graceful stop, delayed jobs and lost leases."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.errors import JobError, PermanentError
from conveyor.handlers import JobContext, Registry
from conveyor.jobs import JobState
from conveyor.retry import FixedBackoff
from conveyor.worker import Worker
from tests.support.inproc import make_settings
from tests.support.waits import wait_for_state, wait_true
from tests.worker.worker_helpers import QUEUE, RunWorker

DONE = {JobState.SUCCEEDED, JobState.DEAD}


async def test_job_succeeds_and_result_is_stored(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    @registry.handler("echo")
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return {"echo": payload, "n": 1}

    job = await client.enqueue("echo", {"a": 1}, queue=QUEUE)
    async with run_worker():
        done = await wait_for_state(client, job.id, DONE)
    assert done.state is JobState.SUCCEEDED
    assert done.result == {"echo": {"a": 1}, "n": 1}
    assert done.attempts == 1


async def test_flaky_job_succeeds_on_third_attempt(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    @registry.handler("flaky", max_attempts=5, backoff=FixedBackoff(0.01))
    async def flaky(payload: dict[str, int], ctx: JobContext) -> int:
        if ctx.attempt <= payload["fail_times"]:
            raise JobError(f"failing attempt {ctx.attempt}", code="flaky_error")
        return ctx.attempt

    job = await client.enqueue("flaky", {"fail_times": 2}, queue=QUEUE)
    async with run_worker():
        done = await wait_for_state(client, job.id, DONE)
    assert done.state is JobState.SUCCEEDED
    assert done.result == 3
    assert done.attempts == 3
    failed = [h for h in done.history if h.error_code == "flaky_error"]
    assert [h.attempt for h in failed] == [1, 2]


async def test_permanent_error_goes_dead_after_one_attempt(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    @registry.handler("perm", max_attempts=5)
    async def perm(payload: None) -> None:
        raise PermanentError("card declined")

    job = await client.enqueue("perm", queue=QUEUE)
    async with run_worker():
        done = await wait_for_state(client, job.id, DONE)
    assert done.state is JobState.DEAD
    assert done.attempts == 1
    assert done.last_error is not None
    assert done.last_error.code == "permanent_failure"
    assert done.last_error.message == "card declined"
    assert "PermanentError" in (done.history[-1].traceback or "")


async def test_timeout_fails_with_code_timeout(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    @registry.handler("slow", max_attempts=1, timeout_s=0.2)
    async def slow(payload: None) -> None:
        await asyncio.sleep(30)

    job = await client.enqueue("slow", queue=QUEUE)
    async with run_worker():
        done = await wait_for_state(client, job.id, DONE)
    assert done.state is JobState.DEAD
    assert done.last_error is not None
    assert done.last_error.code == "timeout"


async def test_sync_timeout_frees_the_slot(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    release = threading.Event()

    @registry.handler("sync_slow", max_attempts=1, timeout_s=0.2)
    def sync_slow(payload: None) -> None:
        release.wait(10)  # a thread cannot be killed: it runs on after the timeout

    job = await client.enqueue("sync_slow", queue=QUEUE)
    try:
        async with run_worker():
            done = await wait_for_state(client, job.id, DONE)
    finally:
        release.set()
    assert done.state is JobState.DEAD
    assert done.last_error is not None
    assert done.last_error.code == "timeout"


async def test_sync_handler_runs_in_a_thread(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    @registry.handler("sync")
    def sync(payload: dict[str, int]) -> dict[str, Any]:
        return {"thread": threading.current_thread().name, "double": payload["x"] * 2}

    job = await client.enqueue("sync", {"x": 21}, queue=QUEUE)
    async with run_worker():
        done = await wait_for_state(client, job.id, DONE)
    assert done.state is JobState.SUCCEEDED
    assert isinstance(done.result, dict)
    assert done.result["double"] == 42
    assert str(done.result["thread"]).startswith("conveyor-job")
    assert done.result["thread"] != threading.current_thread().name


async def test_stop_during_long_job_releases_it(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @registry.handler("long", max_attempts=3)
    async def long(payload: None) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = await client.enqueue("long", queue=QUEUE)
    settings = make_settings(shutdown_grace_s=0.2)
    async with run_worker(settings=settings) as worker:
        await asyncio.wait_for(started.wait(), 10)
        running = await client.get(job.id)
        assert running.state is JobState.RUNNING
        assert running.attempts == 1
    assert cancelled.is_set()
    assert worker.in_flight == 0
    after = await client.get(job.id)
    assert after.state is JobState.QUEUED
    assert after.attempts == 0  # refunded
    assert after.history[-1].outcome == "released"


async def test_second_stop_skips_the_grace_period(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    started = asyncio.Event()

    @registry.handler("long2")
    async def long2(payload: None) -> None:
        started.set()
        await asyncio.sleep(60)

    job = await client.enqueue("long2", queue=QUEUE)
    loop = asyncio.get_running_loop()
    async with run_worker(settings=make_settings(shutdown_grace_s=60)) as worker:
        await asyncio.wait_for(started.wait(), 10)
        t0 = loop.time()
        worker.stop()
        worker.stop()
    assert loop.time() - t0 < 10  # far below the 60 s grace
    after = await client.get(job.id)
    assert after.state is JobState.QUEUED
    assert after.attempts == 0


async def test_job_finishing_within_grace_is_acked(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    started = asyncio.Event()
    go = asyncio.Event()

    @registry.handler("graceful")
    async def graceful(payload: None) -> str:
        started.set()
        await go.wait()
        return "finished"

    job = await client.enqueue("graceful", queue=QUEUE)
    async with run_worker(settings=make_settings(shutdown_grace_s=10)) as worker:
        await asyncio.wait_for(started.wait(), 10)
        worker.stop()
        asyncio.get_running_loop().call_later(0.1, go.set)
    done = await client.get(job.id)
    assert done.state is JobState.SUCCEEDED
    assert done.result == "finished"


async def test_delayed_job_starts_on_time(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    @registry.handler("later")
    async def later(payload: None) -> None:
        return None

    # A long reap interval: only the fetch loop's due-time wait can start the job on time.
    settings = make_settings(reap_interval_s=5.0)
    async with run_worker(settings=settings):
        job = await client.enqueue("later", queue=QUEUE, delay=0.3)
        assert job.state is JobState.SCHEDULED
        done = await wait_for_state(client, job.id, DONE)
    assert done.state is JobState.SUCCEEDED
    assert done.run_at is not None and done.started_at is not None
    lateness = (done.started_at - done.run_at).total_seconds()
    assert -0.001 <= lateness < 0.15, lateness


async def test_lost_lease_cancels_the_handler(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker, broker: RedisBroker
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @registry.handler("stuck", max_attempts=1)
    async def stuck(payload: None) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    # Heartbeats come after the lease expired: the reaper declares it dead, the next
    # heartbeat learns the lease is lost and the run is cancelled.
    settings = make_settings(lease_s=0.3, heartbeat_interval_s=0.6, reap_interval_s=0.05)
    job = await client.enqueue("stuck", queue=QUEUE)
    async with run_worker(settings=settings) as worker:
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.wait_for(cancelled.wait(), 10)
        await wait_true(lambda: worker.in_flight == 0)
    done = await client.get(job.id)
    assert done.state is JobState.DEAD
    assert done.last_error is not None
    assert done.last_error.code == "lease_expired"
    assert worker.completions.rejected == 0  # the cancelled run sent nothing


async def test_redelivery_cancels_the_stale_local_run(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    runs: list[int] = []
    first_cancelled = asyncio.Event()

    @registry.handler("hang_once", max_attempts=3)
    async def hang_once(payload: None, ctx: JobContext) -> int:
        runs.append(ctx.attempt)
        if ctx.attempt == 1:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                first_cancelled.set()
                raise
        return ctx.attempt

    settings = make_settings(lease_s=0.3, heartbeat_interval_s=5.0, reap_interval_s=0.05)
    job = await client.enqueue("hang_once", queue=QUEUE)
    async with run_worker(settings=settings):
        done = await wait_for_state(client, job.id, {JobState.SUCCEEDED, JobState.DEAD})
        await asyncio.wait_for(first_cancelled.wait(), 10)
    assert done.state is JobState.SUCCEEDED
    assert done.result == 2
    assert runs == [1, 2]


async def test_queues_are_served_in_strict_priority_order(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    order: list[str] = []

    @registry.handler("mark")
    async def mark(payload: str) -> None:
        order.append(payload)

    low = [await client.enqueue("mark", f"low{i}", queue="low") for i in range(3)]
    high = [await client.enqueue("mark", f"high{i}", queue="high") for i in range(3)]
    async with run_worker(queues=["high", "low"], concurrency=1):
        for job in low + high:
            await wait_for_state(client, job.id, DONE)
    assert order == ["high0", "high1", "high2", "low0", "low1", "low2"]


async def test_many_jobs_all_acked_in_batches(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker, broker: RedisBroker
) -> None:
    from conveyor.client import JobRequest

    @registry.handler("noop")
    async def noop(payload: int) -> int:
        return payload

    n = 2000
    results = await client.enqueue_many(JobRequest("noop", i, queue=QUEUE) for i in range(n))
    async with run_worker(concurrency=100, settings=make_settings(log_level="WARNING")) as w:
        await wait_true(lambda: w.completions.acked == n, timeout_s=30)
        stats = await broker.stats([QUEUE])
    assert stats[QUEUE]["succeeded"] == n
    assert stats[QUEUE]["running"] == 0 and stats[QUEUE]["queued"] == 0
    assert (await client.get(results[-1].job_id)).result == n - 1
    audit = await broker.audit(QUEUE)
    assert audit.ok, audit


async def test_worker_registers_and_deregisters(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker, broker: RedisBroker
) -> None:
    async with run_worker(concurrency=3) as worker:
        infos = []
        for _ in range(500):
            infos = await broker.workers()
            if infos:
                break
            await asyncio.sleep(0.01)
        assert [i.id for i in infos] == [worker.worker_id]
        assert infos[0].queues == [QUEUE] and infos[0].concurrency == 3
    assert await broker.workers() == []


async def test_unreachable_broker_is_survived_and_stop_is_prompt(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    # Port 1 refuses connections: every loop must back off, none may crash the worker.
    dead = RedisBroker.from_url("redis://127.0.0.1:1/0", key_prefix="cvt-unreachable")
    worker = Worker(
        dead, queues=[QUEUE], concurrency=2, registry=registry,
        settings=make_settings(reap_interval_s=0.05, heartbeat_interval_s=0.05),
    )

    def backoffs() -> int:
        return sum(r.getMessage() == "broker_unavailable_backing_off" for r in caplog.records)

    caplog.set_level(logging.WARNING, logger="conveyor")
    task = asyncio.create_task(worker.run())
    try:
        await wait_true(lambda: backoffs() >= 3)
        assert not task.done()
        assert any(r.getMessage() == "maintenance_skipped" for r in caplog.records)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)
        await dead.close()
    assert task.exception() is None
