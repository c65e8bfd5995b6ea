"""Invariant 9 (bounded memory): finished jobs expire after their retention, the DLQ keeps dead
jobs until its own retention or a purge, and an expired job frees its idempotency key.
"""

from __future__ import annotations

from typing import Any

from conveyor.brokers.base import AckItem, Broker, FailItem
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.errors import JobNotFound
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    BrokerFactory,
    Q,
    assert_audit_ok,
    enqueue,
    fetch_one,
    ms,
    wait_broker_time,
)

SHORT_S = 0.2
SHORT_MS = 200


async def _gone(broker: Broker, job_id: str) -> bool:
    try:
        await broker.get(job_id)
    except JobNotFound:
        return True
    return False


async def _succeed(broker: Broker, **kw: Any) -> str:
    job = await enqueue(broker, **kw)
    d = await fetch_one(broker)
    assert d.job_id == job.id
    assert await broker.ack([AckItem(job.id, d.token)]) == [True]
    return job.id


async def _kill(broker: Broker) -> str:
    job = await enqueue(broker)
    d = await fetch_one(broker)
    assert d.job_id == job.id
    assert await broker.fail([FailItem(job.id, d.token, "e", "m")]) == [JobState.DEAD]
    return job.id


async def _purge_after_retention(broker: Broker, job_id: str, retention_ms: int) -> int:
    """Wait (broker clock) until the job's retention has passed, then purge once."""
    finished = ms((await broker.get(job_id)).finished_at)
    await wait_broker_time(broker, finished + retention_ms + 2)
    return await broker.expire_finished(Q)


async def test_finished_jobs_are_deleted_after_retention(make_broker: BrokerFactory) -> None:
    broker = await make_broker(retention_s=SHORT_S, dlq_retention_s=3600)
    done = await _succeed(broker)
    cancelled = (await enqueue(broker)).id
    await broker.cancel(cancelled)
    live = (await enqueue(broker)).id
    finished = {j: ms((await broker.get(j)).finished_at) for j in (done, cancelled)}

    purged = await broker.expire_finished(Q)  # right away: normally too early to delete
    now = await broker.now_ms()
    for job_id, at in finished.items():
        if await _gone(broker, job_id):
            assert now - at >= SHORT_MS, "purged before its retention passed"

    await wait_broker_time(broker, max(finished.values()) + SHORT_MS + 2)
    assert purged + await broker.expire_finished(Q) == 2
    assert await _gone(broker, done)
    assert await _gone(broker, cancelled)
    assert (await broker.get(live)).state == JobState.QUEUED
    counts = (await broker.stats([Q]))[Q]
    assert counts[JobState.SUCCEEDED] == counts[JobState.CANCELLED] == 0
    assert await broker.expire_finished(Q) == 0
    await assert_audit_ok(broker)


async def test_an_expired_job_frees_its_idempotency_key(make_broker: BrokerFactory) -> None:
    broker = await make_broker(retention_s=SHORT_S)
    client = AsyncConveyor(broker, validate_types=False)
    first = await _succeed(broker, idempotency_key="report-7")

    held, created = await client.enqueue_job(
        JobRequest("conf.task", None, Q, idempotency_key="report-7")
    )
    assert not created and held.id == first  # still retained: the key still names it

    await _purge_after_retention(broker, first, SHORT_MS)
    assert await _gone(broker, first)
    fresh, created = await client.enqueue_job(
        JobRequest("conf.task", None, Q, idempotency_key="report-7")
    )
    assert created
    assert fresh.id != first
    await assert_audit_ok(broker)


async def test_dead_jobs_outlive_the_normal_retention(make_broker: BrokerFactory) -> None:
    broker = await make_broker(retention_s=SHORT_S, dlq_retention_s=3600)
    dead = await _kill(broker)
    done = await _succeed(broker)
    await _purge_after_retention(broker, done, SHORT_MS)
    assert await _gone(broker, done)
    assert (await broker.get(dead)).state == JobState.DEAD
    assert [j.id for j in (await broker.dlq_list(Q)).items] == [dead]

    assert await broker.dlq_purge(Q, [dead]) == [dead]
    assert await _gone(broker, dead)
    assert (await broker.dlq_list(Q)).items == []
    await assert_audit_ok(broker)


async def test_dead_jobs_expire_after_the_dlq_retention(make_broker: BrokerFactory) -> None:
    broker = await make_broker(retention_s=3600, dlq_retention_s=SHORT_S)
    dead = await _kill(broker)
    done = await _succeed(broker)
    assert await _purge_after_retention(broker, dead, SHORT_MS) == 1
    assert await _gone(broker, dead)
    assert (await broker.get(done)).state == JobState.SUCCEEDED
    await assert_audit_ok(broker)


async def test_dlq_purge_all_deletes_only_dead_jobs(broker: Broker) -> None:
    dead = sorted([await _kill(broker) for _ in range(3)])
    done = await _succeed(broker)
    assert sorted(await broker.dlq_purge(Q)) == dead
    for job_id in dead:
        assert await _gone(broker, job_id)
    assert (await broker.get(done)).state == JobState.SUCCEEDED
    assert await broker.dlq_purge(Q, [done]) == []  # not dead: not purged
    assert (await broker.get(done)).state == JobState.SUCCEEDED
    await assert_audit_ok(broker)


async def test_retention_can_be_set_per_queue(make_broker: BrokerFactory) -> None:
    broker = await make_broker(retention_s=3600, queue_retention_s={Q: SHORT_S})
    short = await _succeed(broker)
    other = await enqueue(broker, queue="kept")
    d = await fetch_one(broker, queue="kept")
    assert await broker.ack([AckItem(other.id, d.token)]) == [True]
    await _purge_after_retention(broker, short, SHORT_MS)
    assert await broker.expire_finished("kept") == 0
    assert await _gone(broker, short)
    assert (await broker.get(other.id)).state == JobState.SUCCEEDED
    await assert_audit_ok(broker)
    await assert_audit_ok(broker, "kept")
