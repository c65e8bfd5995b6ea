"""Handlers that misbehave, and the jobs beside them: whatever a handler raises (SystemExit,
KeyboardInterrupt, its own CancelledError, a message no broker can store) is that job's
failure, recorded as it happened; a handler blocking the loop is named; a type the worker
does not know is not burned silently."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor.brokers import broker_from_url
from conveyor.brokers.base import Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.errors import JobError
from conveyor.handlers import Registry
from conveyor.jobs import JobState
from tests.support.env import REDIS_URL
from tests.support.inproc import make_settings
from tests.support.waits import wait_for_state
from tests.worker.worker_helpers import QUEUE, RunWorker

DONE = {JobState.SUCCEEDED, JobState.DEAD}

BAD_APP = '''
import asyncio
from conveyor import handler

@handler("exit.async", max_attempts=1)
async def exit_async(payload):
    raise SystemExit(3)

@handler("exit.sync", max_attempts=1)
def exit_sync(payload):
    raise SystemExit("bye")

@handler("interrupt.async", max_attempts=1)
async def interrupt_async(payload):
    raise KeyboardInterrupt

@handler("interrupt.sync", max_attempts=1)
def interrupt_sync(payload):
    raise KeyboardInterrupt

@handler("steady", max_attempts=1)
async def steady(payload):
    await asyncio.sleep(payload)
    return "ok"
'''


async def test_system_exit_and_keyboard_interrupt_are_their_jobs_failures(
    tmp_path: Path, prefix: str, broker: RedisBroker
) -> None:
    """A real worker process: today the first SystemExit kills it and every job running
    beside it loses its run (DEAD `lease_expired` with max_attempts 1)."""
    (tmp_path / "bad_app.py").write_text(BAD_APP)
    client = AsyncConveyor(broker, validate_types=False)
    steady = [await client.enqueue("steady", 1.5, queue=QUEUE) for _ in range(3)]
    env = {**os.environ, "CONVEYOR_BROKER_URL": REDIS_URL, "CONVEYOR_KEY_PREFIX": prefix,
           "CONVEYOR_LOG_FORMAT": "json", "CONVEYOR_LEASE_S": "2",
           "CONVEYOR_REAP_INTERVAL_S": "0.2", "PYTHONPATH": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conveyor", "worker", "--queues", QUEUE, "--concurrency", "8",
        "--app", "bad_app", env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for j in steady:
            await wait_for_state(client, j.id, {JobState.RUNNING})
        bad_types = ["exit.async", "exit.sync", "interrupt.async", "interrupt.sync"]
        bad = [await client.enqueue(t, None, queue=QUEUE) for t in bad_types]
        dead = [await wait_for_state(client, j.id, DONE) for j in bad]
        ok = [await wait_for_state(client, j.id, DONE) for j in steady]
        assert proc.returncode is None, "the worker died"
        late = await client.enqueue("steady", 0, queue=QUEUE)  # and it still serves
        assert (await wait_for_state(client, late.id, DONE)).state is JobState.SUCCEEDED
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    for job, name in zip(dead, ["SystemExit", "SystemExit", "KeyboardInterrupt",
                                "KeyboardInterrupt"], strict=True):
        assert job.state is JobState.DEAD
        assert job.last_error is not None and job.last_error.code == "handler_error", job
        assert name in (job.history[-1].traceback or "")
    assert [j.state for j in ok] == [JobState.SUCCEEDED] * 3
    assert [j.result for j in ok] == ["ok"] * 3
    assert [j.attempts for j in ok] == [1] * 3


async def test_a_handler_raising_cancelled_error_fails_with_its_real_outcome(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    """Today the job vanishes from the worker's books and ends DEAD `lease_expired` once the
    lease runs out; its real outcome is lost."""

    @registry.handler("gives.up", max_attempts=1)
    async def gives_up(payload: None) -> None:
        raise asyncio.CancelledError("upstream call was cancelled")

    @registry.handler("gives.up.sync", max_attempts=1)
    def gives_up_sync(payload: None) -> None:
        raise asyncio.CancelledError("sync gave up")

    jobs = [await client.enqueue(t, queue=QUEUE) for t in ("gives.up", "gives.up.sync")]
    async with run_worker(settings=make_settings(lease_s=1.0)):
        done = [await wait_for_state(client, j.id, DONE) for j in jobs]
    for job, message in zip(done, ["upstream call was cancelled", "sync gave up"], strict=True):
        assert job.state is JobState.DEAD
        assert job.last_error is not None
        assert job.last_error.code == "handler_error", job.last_error
        assert job.last_error.message == message
        assert "CancelledError" in (job.history[-1].traceback or "")


@pytest.fixture(params=["redis", "sqlite"])
async def any_broker(
    request: pytest.FixtureRequest, broker: RedisBroker, tmp_path: Path
) -> Any:
    if request.param == "redis":
        yield broker
        return
    sqlite = broker_from_url(f"sqlite:///{tmp_path / 'jobs.db'}")
    await sqlite.connect()
    try:
        yield sqlite
    finally:
        await sqlite.close()


async def test_an_odd_error_message_never_drops_the_other_outcomes(
    registry: Registry, any_broker: Broker, run_worker: RunWorker
) -> None:
    """21 jobs fail together; one message holds a surrogate-escaped file name. Today the fail
    batch cannot be sent and all 21 end `lease_expired` instead of their own errors."""
    client = AsyncConveyor(any_broker, registry=registry)
    odd_name = os.fsdecode(b"report-\xff.txt")
    together = asyncio.Event()
    started = 0

    @registry.handler("fails", max_attempts=1)
    async def fails(payload: int) -> None:
        nonlocal started
        started += 1
        if started == 21:
            together.set()
        await together.wait()
        if payload == 7:
            raise JobError(f"cannot open {odd_name}", code="io_error")
        raise JobError(f"error {payload}", code="io_error")

    jobs = [await client.enqueue("fails", i, queue=QUEUE) for i in range(21)]
    async with run_worker(concurrency=21, settings=make_settings(lease_s=1.0), on=any_broker):
        done = [await wait_for_state(client, j.id, DONE) for j in jobs]
    for i, job in enumerate(done):
        assert job.state is JobState.DEAD
        assert job.last_error is not None and job.last_error.code == "io_error", job.last_error
        want = "cannot open report-\ufffd.txt" if i == 7 else f"error {i}"
        assert job.last_error.message == want


async def test_a_handler_blocking_the_loop_is_named_while_it_blocks(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    @registry.handler("blocks", max_attempts=1)
    async def blocks(payload: None) -> str:
        time.sleep(1.0)  # noqa: ASYNC251 - the mistake under test: it blocks the loop
        return "done"

    job = await client.enqueue("blocks", queue=QUEUE)
    with caplog.at_level(logging.WARNING, logger="conveyor.worker.loop"):
        async with run_worker(settings=make_settings(loop_block_warn_s=0.2)):
            done = await wait_for_state(client, job.id, DONE)
    assert done.state is JobState.SUCCEEDED
    blocked = [r for r in caplog.records if r.getMessage() == "event_loop_blocked"]
    assert blocked, [r.getMessage() for r in caplog.records]
    record = blocked[0]
    assert getattr(record, "job_id", None) == job.id
    assert getattr(record, "job_type", None) == "blocks"
    assert f"{job.id} (blocks)" in getattr(record, "running_jobs", [])
    assert done.finished_at is not None
    assert record.created < done.finished_at.timestamp()  # said while it was blocking
    after = [r for r in caplog.records if r.getMessage() == "event_loop_was_blocked"]
    assert after and getattr(after[0], "blocked_s", 0) >= 0.2


async def test_an_unknown_type_says_which_worker_lacked_it_and_is_retried(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    @registry.handler("known.type")
    async def known(payload: None) -> None: ...

    client.validate_types = False
    job = await client.enqueue("not.loaded", queue=QUEUE, max_attempts=3)
    with caplog.at_level(logging.INFO, logger="conveyor.worker"):
        async with run_worker() as worker:
            after = await wait_for_state(client, job.id, {JobState.SCHEDULED, JobState.DEAD})
    started = [r for r in caplog.records if r.getMessage() == "worker_started"]
    assert getattr(started[0], "job_types", None) == ["known.type"]
    # Attempt 1 charged, then back to the schedule: a worker that knows the type may take it.
    assert after.state is JobState.SCHEDULED and after.attempts == 1
    assert after.last_error is not None and after.last_error.code == "unknown_job_type"
    message = after.last_error.message
    assert worker.worker_id in message and "--app" in message and "CONVEYOR_APP" in message
    assert "known.type" in message
