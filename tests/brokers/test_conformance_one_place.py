"""Invariant 1 (one place): audit passes on a busy queue, and the audit really can fail.

The corruption tests reach past the Broker protocol into Redis (`backend("redis")`); a new
backend adds its own way of damaging its store to show its audit can fail too.
"""

from __future__ import annotations

import pytest

from conveyor.brokers.base import AckItem, Broker, FailItem
from conveyor.ids import new_job_id, split_job_id
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    Q,
    assert_audit_ok,
    enqueue,
    fetch_one,
    redis_index_key,
    redis_job_key,
    redis_of,
)


async def test_audit_ok_with_a_job_in_every_state(broker: Broker) -> None:
    scheduled = await enqueue(broker, delay=3600)
    to_cancel = await enqueue(broker)
    await broker.cancel(to_cancel.id)
    to_ack, to_kill, running = [await enqueue(broker, i) for i in range(3)]
    queued = await enqueue(broker, "stays queued")
    leases = [await fetch_one(broker) for _ in range(3)]
    by_id = {d.job_id: d for d in leases}
    assert set(by_id) == {to_ack.id, to_kill.id, running.id}
    assert await broker.ack([AckItem(to_ack.id, by_id[to_ack.id].token)]) == [True]
    assert await broker.fail([FailItem(to_kill.id, by_id[to_kill.id].token, "boom", "x")]) == [
        JobState.DEAD
    ]

    report = await broker.audit(Q)
    assert report.ok, report
    assert report.jobs_seen == 6
    expected = {
        scheduled.id: JobState.SCHEDULED,
        to_cancel.id: JobState.CANCELLED,
        to_ack.id: JobState.SUCCEEDED,
        to_kill.id: JobState.DEAD,
        running.id: JobState.RUNNING,
        queued.id: JobState.QUEUED,
    }
    for job_id, state in expected.items():
        assert (await broker.get(job_id)).state == state


async def test_audit_of_an_empty_queue_is_ok(broker: Broker) -> None:
    report = await broker.audit("never-used")
    assert report.ok
    assert report.jobs_seen == 0


@pytest.mark.backend("redis")
@pytest.mark.corrupts_store
async def test_audit_reports_a_job_in_two_indexes(broker: Broker) -> None:
    job = await enqueue(broker)
    _, ulid = split_job_id(job.id)
    await redis_of(broker).zadd(redis_index_key(broker, Q, JobState.DEAD), {ulid: 1})
    report = await broker.audit(Q)
    assert not report.ok
    assert report.duplicates == [job.id]


@pytest.mark.backend("redis")
@pytest.mark.corrupts_store
async def test_audit_reports_a_job_in_no_index(broker: Broker) -> None:
    job = await enqueue(broker)
    _, ulid = split_job_id(job.id)
    await redis_of(broker).zrem(redis_index_key(broker, Q, JobState.QUEUED), ulid)
    report = await broker.audit(Q)
    assert not report.ok
    assert report.orphans == [job.id]


@pytest.mark.backend("redis")
@pytest.mark.corrupts_store
async def test_audit_reports_an_index_that_disagrees_with_the_record(broker: Broker) -> None:
    job = await enqueue(broker)
    await redis_of(broker).hset(redis_job_key(broker, job.id), "state", "running")
    report = await broker.audit(Q)
    assert not report.ok
    assert report.mismatched == [job.id]


@pytest.mark.backend("redis")
@pytest.mark.corrupts_store
async def test_audit_reports_an_index_member_without_a_record(broker: Broker) -> None:
    await enqueue(broker)
    ghost = new_job_id(Q)
    _, ulid = split_job_id(ghost)
    await redis_of(broker).zadd(redis_index_key(broker, Q, JobState.QUEUED), {ulid: 0})
    report = await broker.audit(Q)
    assert not report.ok
    assert report.dangling == [ghost]
    await assert_audit_ok(broker, "other-queue")  # damage stays in its queue
