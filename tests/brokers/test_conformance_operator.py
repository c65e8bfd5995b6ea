"""Operator calls on every backend: cancel, manual retry, the DLQ, pause/resume, stats,
waiting for work, and what `get` does with unknown, malformed or corrupt jobs.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from conveyor.brokers.base import AckItem, Broker, FailItem
from conveyor.errors import CorruptJob, InvalidState, JobNotFound, ValidationError
from conveyor.ids import new_job_id
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    Q,
    assert_audit_ok,
    assert_in_one_state,
    enqueue,
    fetch_none,
    fetch_one,
    redis_job_key,
    redis_of,
)


async def _dead(broker: Broker, payload: object = None, code: str = "e") -> str:
    job = await enqueue(broker, payload, max_attempts=3)
    d = await fetch_one(broker)
    assert d.job_id == job.id
    assert await broker.fail([FailItem(job.id, d.token, code, "failed")]) == [JobState.DEAD]
    return job.id


# --- cancel ---------------------------------------------------------------------------------


async def test_cancel_queued_and_scheduled_jobs(broker: Broker) -> None:
    queued = await enqueue(broker)
    scheduled = await enqueue(broker, delay=3600)
    for job in (queued, scheduled):
        got = await broker.cancel(job.id)
        assert got.state == JobState.CANCELLED
        assert got.finished_at is not None
        assert got.last_error is not None and got.last_error.code == "cancelled"
        await assert_in_one_state(broker, job.id, JobState.CANCELLED)
    batch = await broker.fetch(Q, 10, "w", LONG_LEASE_MS)
    assert batch.deliveries == []
    assert batch.next_due_ms is None  # the cancelled scheduled job is no longer due
    await assert_audit_ok(broker)


async def test_cancel_refuses_jobs_that_are_finished(broker: Broker) -> None:
    running = await enqueue(broker)
    d = await fetch_one(broker)
    asked = await broker.cancel(running.id)  # running: a request (test_conformance_cancel)
    assert asked.state == JobState.RUNNING and asked.cancel_requested
    assert await broker.ack([AckItem(running.id, d.token)]) == [True]
    with pytest.raises(InvalidState):
        await broker.cancel(running.id)  # succeeded
    dead = await _dead(broker)
    with pytest.raises(InvalidState):
        await broker.cancel(dead)
    await assert_audit_ok(broker)


async def test_cancel_of_a_cancelled_job_is_refused_and_changes_nothing(broker: Broker) -> None:
    job = await enqueue(broker)
    cancelled = await broker.cancel(job.id)
    with pytest.raises(InvalidState):
        await broker.cancel(job.id)
    assert await broker.get(job.id) == cancelled
    await assert_audit_ok(broker)


async def test_cancel_unknown_and_malformed_ids(broker: Broker) -> None:
    with pytest.raises(JobNotFound):
        await broker.cancel(new_job_id(Q))
    for bad in ("nope", f"{Q}:", "bad queue!:0123", ""):
        with pytest.raises(ValidationError):
            await broker.cancel(bad)
    await assert_audit_ok(broker)


# --- manual retry and the DLQ ---------------------------------------------------------------


async def test_manual_retry_of_a_dead_job(broker: Broker) -> None:
    job_id = await _dead(broker)
    retried = await broker.retry(job_id, actor="alice")
    assert retried.state == JobState.QUEUED
    assert retried.attempts == 0
    assert len(retried.history) == 2
    entry = retried.history[-1]
    assert entry.outcome == "retried"
    assert "alice" in f"{entry.worker} {entry.message}"  # who asked is on record
    await assert_in_one_state(broker, job_id, JobState.QUEUED)
    d = await fetch_one(broker)
    assert (d.job_id, d.attempts) == (job_id, 1)
    await assert_audit_ok(broker)


async def test_retry_refuses_live_jobs_and_unknown_ids(broker: Broker) -> None:
    queued = await enqueue(broker)
    before = await broker.get(queued.id)
    with pytest.raises(InvalidState):
        await broker.retry(queued.id)
    assert await broker.get(queued.id) == before
    await fetch_one(broker)
    with pytest.raises(InvalidState):
        await broker.retry(queued.id)
    with pytest.raises(JobNotFound):
        await broker.retry(new_job_id(Q))
    with pytest.raises(ValidationError):
        await broker.retry("not-an-id")
    assert (await broker.get(queued.id)).state == JobState.RUNNING
    await assert_audit_ok(broker)


async def test_dlq_list_and_redrive_by_ids(broker: Broker) -> None:
    dead = [await _dead(broker, i) for i in range(3)]
    live = await enqueue(broker)
    page = await broker.dlq_list(Q)
    assert sorted(j.id for j in page.items) == sorted(dead)
    assert all(j.state == JobState.DEAD for j in page.items)

    redriven = await broker.dlq_redrive(Q, [dead[0], dead[2], live.id])
    assert sorted(redriven) == sorted([dead[0], dead[2]])  # a live job is not redriven
    assert [j.id for j in (await broker.dlq_list(Q)).items] == [dead[1]]
    for job_id in (dead[0], dead[2]):
        got = await assert_in_one_state(broker, job_id, JobState.QUEUED)
        assert got.attempts == 0
    with pytest.raises(ValidationError):
        await broker.dlq_redrive(Q, [new_job_id("another-queue")])
    await assert_audit_ok(broker)


async def test_dlq_redrive_all(broker: Broker) -> None:
    dead = [await _dead(broker, i) for i in range(4)]
    assert sorted(await broker.dlq_redrive(Q)) == sorted(dead)
    assert (await broker.dlq_list(Q)).items == []
    assert (await broker.stats([Q]))[Q][JobState.QUEUED] == 4
    assert await broker.dlq_redrive(Q) == []
    await assert_audit_ok(broker)


async def test_dlq_list_pages(broker: Broker) -> None:
    dead = {await _dead(broker, i) for i in range(5)}
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await broker.dlq_list(Q, limit=2, cursor=cursor)
        seen += [j.id for j in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(dead)
    await assert_audit_ok(broker)


# --- pause / resume -------------------------------------------------------------------------


async def test_paused_queue_hands_out_nothing(broker: Broker) -> None:
    await broker.pause(Q)
    assert await broker.is_paused(Q)
    job = await enqueue(broker)
    other = await enqueue(broker, queue="unpaused")
    await fetch_none(broker)
    assert (await broker.get(job.id)).state == JobState.QUEUED
    assert (await fetch_one(broker, queue="unpaused")).job_id == other.id

    await broker.resume(Q)
    assert not await broker.is_paused(Q)
    assert (await fetch_one(broker)).job_id == job.id
    await assert_audit_ok(broker)
    await assert_audit_ok(broker, "unpaused")


# --- stats ----------------------------------------------------------------------------------


async def test_stats_count_every_state(broker: Broker) -> None:
    await _dead(broker)
    await enqueue(broker, delay=3600)
    cancelled = await enqueue(broker, delay=3600)
    await broker.cancel(cancelled.id)
    for _ in range(2):  # fetched: one acked, one left running
        job = await enqueue(broker)
        d = await fetch_one(broker)
        assert d.job_id == job.id
    assert await broker.ack([AckItem(d.job_id, d.token)]) == [True]
    await enqueue(broker)
    await enqueue(broker)

    stats = await broker.stats([Q, "empty"])
    assert stats[Q] == {
        "scheduled": 1,
        "queued": 2,
        "running": 1,
        "succeeded": 1,
        "dead": 1,
        "cancelled": 1,
    }
    assert stats["empty"] == {str(s): 0 for s in JobState}
    assert Q in await broker.queues()
    assert Q in await broker.stats()
    await assert_audit_ok(broker)


# --- waiting for work -----------------------------------------------------------------------


async def test_wait_for_work_times_out_when_nothing_comes(broker: Broker) -> None:
    started = time.monotonic()
    assert await broker.wait_for_work(["idle-queue"], 0.2) is False
    assert time.monotonic() - started >= 0.15
    await assert_audit_ok(broker, "idle-queue")


async def test_wait_for_work_wakes_when_a_job_arrives(broker: Broker) -> None:
    waiter = asyncio.create_task(broker.wait_for_work(["elsewhere", Q], 5.0))
    started = time.monotonic()
    job = await enqueue(broker)
    assert await asyncio.wait_for(waiter, 4.5) is True
    assert time.monotonic() - started < 4.0, "woken by the timeout, not by the enqueue"
    assert (await fetch_one(broker)).job_id == job.id
    await assert_audit_ok(broker)


async def test_a_delayed_job_costs_a_bounded_number_of_wakeups(broker: Broker) -> None:
    """A worker's loop (wait for work, then fetch) over one job due in 0.5 s: the wait ends
    when the job is due (or at its timeout), not at once and again. The SQLite wait once
    answered "work" for any job due before the wait's end, and its worker fetched about
    1,750 times before the job was due."""
    job = await enqueue(broker, delay=0.5)
    fetches = 0
    while True:
        await broker.wait_for_work([Q], 2.0)
        fetches += 1
        batch = await broker.fetch(Q, 1, "w1", LONG_LEASE_MS)
        if batch.deliveries:
            break
        assert fetches < 3, "the wait keeps returning before the job is due"
    assert [d.job_id for d in batch.deliveries] == [job.id]
    await assert_audit_ok(broker)


# --- reading jobs ---------------------------------------------------------------------------


async def test_get_unknown_and_malformed_ids(broker: Broker) -> None:
    with pytest.raises(JobNotFound):
        await broker.get(new_job_id(Q))
    with pytest.raises(ValidationError):
        await broker.get("definitely not an id")
    await assert_audit_ok(broker)


@pytest.mark.backend("redis")
@pytest.mark.corrupts_store
@pytest.mark.parametrize(
    ("field", "garbage"),
    [("payload", "{not json"), ("state", "zombie"), ("created", "yesterday"), ("history", "}{\n")],
)
async def test_corrupt_record_raises_corrupt_job(broker: Broker, field: str, garbage: str) -> None:
    job = await enqueue(broker, {"fine": True})
    await redis_of(broker).hset(redis_job_key(broker, job.id), field, garbage)
    with pytest.raises(CorruptJob) as err:
        await broker.get(job.id)
    assert err.value.details == {"job_id": job.id}
    assert err.value.code == "corrupt_job"
