"""Invariant 2 (atomic transitions): each arrow of the state machine lands in exactly one state,
and concurrent callers never see a half-done transition (no job handed out twice).
"""

from __future__ import annotations

import asyncio

from conveyor.brokers.base import AckItem, Broker, FailItem, LeaseRef
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.errors import InvalidState
from conveyor.jobs import Delivery, JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    Q,
    assert_audit_ok,
    assert_in_one_state,
    deliver_with_short_lease,
    enqueue,
    expire_and_reap,
    fetch_one,
    ms,
    wait_broker_time,
)


async def test_every_arrow_lands_in_exactly_one_state(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=5, delay=0.1)
    await assert_in_one_state(broker, job.id, JobState.SCHEDULED)

    await wait_broker_time(broker, ms(job.run_at))
    assert await broker.promote_due(Q) == 1
    await assert_in_one_state(broker, job.id, JobState.QUEUED)

    d = await fetch_one(broker)
    await assert_in_one_state(broker, job.id, JobState.RUNNING)
    assert await broker.heartbeat([LeaseRef(job.id, d.token)], LONG_LEASE_MS) == []
    await assert_in_one_state(broker, job.id, JobState.RUNNING)

    retry = FailItem(job.id, d.token, "handler_error", "try later", retry_delay_ms=50)
    assert await broker.fail([retry]) == [JobState.SCHEDULED]
    scheduled = await assert_in_one_state(broker, job.id, JobState.SCHEDULED)

    await wait_broker_time(broker, ms(scheduled.run_at))
    d = await fetch_one(broker)  # fetch promotes due jobs itself
    await assert_in_one_state(broker, job.id, JobState.RUNNING)
    assert await broker.release([LeaseRef(job.id, d.token)]) == [True]
    await assert_in_one_state(broker, job.id, JobState.QUEUED)

    d = await fetch_one(broker)
    assert await broker.fail([FailItem(job.id, d.token, "e", "m", retry_delay_ms=0)]) == [
        JobState.QUEUED
    ]
    await assert_in_one_state(broker, job.id, JobState.QUEUED)

    d, now = await deliver_with_short_lease(broker)
    await assert_in_one_state(broker, job.id, JobState.RUNNING)
    assert await expire_and_reap(broker, now, 30) == (1, 0)
    await assert_in_one_state(broker, job.id, JobState.QUEUED)

    d = await fetch_one(broker)
    assert await broker.ack([AckItem(job.id, d.token, '{"ok": true}')]) == [True]
    done = await assert_in_one_state(broker, job.id, JobState.SUCCEEDED)
    assert done.result == {"ok": True}
    await assert_audit_ok(broker)


async def test_operator_arrows_land_in_exactly_one_state(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=3)
    await broker.cancel(job.id)
    await assert_in_one_state(broker, job.id, JobState.CANCELLED)
    await broker.retry(job.id)
    await assert_in_one_state(broker, job.id, JobState.QUEUED)

    d = await fetch_one(broker)
    assert await broker.fail([FailItem(job.id, d.token, "permanent_failure", "no")]) == [
        JobState.DEAD
    ]
    await assert_in_one_state(broker, job.id, JobState.DEAD)
    assert await broker.dlq_redrive(Q, [job.id]) == [job.id]
    await assert_in_one_state(broker, job.id, JobState.QUEUED)

    d = await fetch_one(broker)
    assert await broker.fail([FailItem(job.id, d.token, "e", "m")]) == [JobState.DEAD]
    await broker.retry(job.id)
    await assert_in_one_state(broker, job.id, JobState.QUEUED)
    d = await fetch_one(broker)
    assert d.attempts == 1  # retry starts the count again
    await assert_in_one_state(broker, job.id, JobState.RUNNING)
    await assert_audit_ok(broker)


async def test_concurrent_fetchers_never_share_a_job(broker: Broker) -> None:
    client = AsyncConveyor(broker, validate_types=False)
    results = await client.enqueue_many(
        JobRequest("conf.task", {"n": i}, queue=Q) for i in range(200)
    )
    enqueued = {r.job_id for r in results}
    assert len(enqueued) == 200

    async def worker(n: int) -> list[Delivery]:
        got: list[Delivery] = []
        while True:
            batch = await broker.fetch(Q, 3, f"w{n}", LONG_LEASE_MS)
            if not batch.deliveries:
                return got
            got += batch.deliveries
            acks = await broker.ack([AckItem(d.job_id, d.token) for d in batch.deliveries])
            assert all(acks)

    per_worker = await asyncio.gather(*(worker(n) for n in range(10)))
    delivered = [d.job_id for got in per_worker for d in got]
    assert len(delivered) == len(set(delivered)) == 200, "a job was delivered twice"
    assert set(delivered) == enqueued
    assert all(d.attempts == 1 for got in per_worker for d in got)
    assert (await broker.stats([Q]))[Q][JobState.SUCCEEDED] == 200
    await assert_audit_ok(broker)


async def test_racing_acks_and_fails_of_one_lease_apply_once(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=5)
    d = await fetch_one(broker)

    async def ack() -> bool:
        return (await broker.ack([AckItem(job.id, d.token)]))[0]

    async def fail() -> bool:
        item = FailItem(job.id, d.token, "e", "m", retry_delay_ms=0)
        return (await broker.fail([item]))[0] is not None

    outcomes = await asyncio.gather(fail(), *(ack() for _ in range(9)))
    acked, failed = any(outcomes[1:]), outcomes[0]
    # exactly one transition applies: either the acks (the same lease's acks all report
    # success, they are one ack sent several times) or the fail, never both
    assert acked != failed, outcomes
    assert all(outcomes[1:]) == acked, outcomes
    final = await broker.get(job.id)
    assert final.state in (JobState.SUCCEEDED, JobState.QUEUED)
    assert len([h for h in final.history if h.attempt == 1]) == 1
    await assert_audit_ok(broker)


async def test_cancel_racing_fetch_each_job_ends_in_one_state(broker: Broker) -> None:
    jobs = [await enqueue(broker, i) for i in range(40)]

    async def cancel(job_id: str) -> bool:
        """True: cancelled at once; False: it was running first (a request recorded)."""
        try:
            return (await broker.cancel(job_id)).state == JobState.CANCELLED
        except InvalidState:
            return False

    async def fetch_all() -> list[Delivery]:
        got: list[Delivery] = []
        while batch := (await broker.fetch(Q, 2, "w", LONG_LEASE_MS)).deliveries:
            got += batch
        return got

    fetching = asyncio.create_task(fetch_all())
    cancelled = await asyncio.gather(*(cancel(j.id) for j in jobs))
    fetched = await fetching
    fetched_ids = {d.job_id for d in fetched}
    for job, was_cancelled in zip(jobs, cancelled, strict=True):
        state = (await broker.get(job.id)).state
        if was_cancelled:
            assert state == JobState.CANCELLED and job.id not in fetched_ids
        else:
            assert state == JobState.RUNNING and job.id in fetched_ids
            assert (await broker.get(job.id)).cancel_requested
    await assert_audit_ok(broker)
