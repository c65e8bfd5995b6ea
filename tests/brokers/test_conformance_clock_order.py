"""Invariants 7 (one clock: due times and leases on the broker's clock) and 8 (order: higher
priority first, FIFO within a priority, released jobs back ahead of newer ones).
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from conveyor.brokers.base import Broker, LeaseRef
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    Q,
    assert_audit_ok,
    enqueue,
    fetch_none,
    fetch_one,
    ms,
    wait_broker_time,
)


async def test_due_time_is_computed_from_the_broker_clock(broker: Broker) -> None:
    before = await broker.now_ms()
    job = await enqueue(broker, delay=0.3)
    after = await broker.now_ms()
    created, run_at = ms(job.created_at), ms(job.run_at)
    assert before <= created <= after
    assert run_at == created + 300
    assert job.state == JobState.SCHEDULED
    await assert_audit_ok(broker)


async def test_delayed_job_is_fetchable_exactly_when_broker_time_reaches_run_at(
    broker: Broker,
) -> None:
    job = await enqueue(broker, delay=0.3)
    run_at = ms(job.run_at)
    deadline = asyncio.get_running_loop().time() + 10
    fetches_before_due = 0
    while True:
        batch = await broker.fetch(Q, 1, "w", LONG_LEASE_MS)
        if batch.now_ms < run_at:
            assert batch.deliveries == [], "delivered before its run_at"
            assert batch.next_due_ms == run_at
            fetches_before_due += 1
        else:
            assert [d.job_id for d in batch.deliveries] == [job.id], "due job not delivered"
            break
        assert asyncio.get_running_loop().time() < deadline, "broker clock did not advance"
        await asyncio.sleep(0.02)
    assert fetches_before_due >= 1
    assert batch.next_due_ms is None
    await assert_audit_ok(broker)


async def test_absolute_run_at_is_kept_and_next_due_is_the_earliest(broker: Broker) -> None:
    now = await broker.now_ms()
    late = await enqueue(broker, run_at=datetime.fromtimestamp((now + 60_000) / 1000, UTC))
    soon = await enqueue(broker, run_at=datetime.fromtimestamp((now + 30_000) / 1000, UTC))
    assert ms(late.run_at) == now + 60_000
    assert ms(soon.run_at) == now + 30_000
    batch = await broker.fetch(Q, 5, "w", LONG_LEASE_MS)
    assert batch.deliveries == []
    assert batch.next_due_ms == now + 30_000
    assert (await broker.get(late.id)).state == JobState.SCHEDULED
    await assert_audit_ok(broker)


async def test_run_at_in_the_past_is_queued_at_once(broker: Broker) -> None:
    now = await broker.now_ms()
    job = await enqueue(broker, run_at=datetime.fromtimestamp((now - 5_000) / 1000, UTC))
    assert job.state == JobState.QUEUED
    assert (await fetch_one(broker)).job_id == job.id
    await assert_audit_ok(broker)


async def test_promote_due_moves_only_due_jobs(broker: Broker) -> None:
    due = await enqueue(broker, delay=0.05)
    later = await enqueue(broker, delay=3600)
    await wait_broker_time(broker, ms(due.run_at))
    assert await broker.promote_due(Q) == 1
    assert (await broker.get(due.id)).state == JobState.QUEUED
    assert (await broker.get(later.id)).state == JobState.SCHEDULED
    assert await broker.promote_due(Q) == 0
    await assert_audit_ok(broker)


async def test_higher_priority_first_then_fifo(broker: Broker) -> None:
    rng = random.Random(8)
    prios = [rng.choice([-5, 0, 0, 3, 10, 1000, -1000]) for _ in range(30)]
    results = await AsyncConveyor(broker, validate_types=False).enqueue_many(
        JobRequest("t", {"i": i}, Q, priority=p) for i, p in enumerate(prios)
    )
    expected = [results[i].job_id for i in sorted(range(30), key=lambda i: (-prios[i], i))]
    got = [(await fetch_one(broker)).job_id for _ in range(30)]
    assert got == expected
    await fetch_none(broker)
    await assert_audit_ok(broker)


async def test_fifo_across_separate_enqueue_calls(broker: Broker) -> None:
    jobs = [await enqueue(broker, i, priority=i % 2) for i in range(10)]
    batch = await broker.fetch(Q, 10, "w", LONG_LEASE_MS)
    odd = [j.id for j in jobs if j.priority == 1]
    even = [j.id for j in jobs if j.priority == 0]
    assert [d.job_id for d in batch.deliveries] == odd + even
    await assert_audit_ok(broker)


async def test_released_jobs_go_back_ahead_of_newer_ones(broker: Broker) -> None:
    a, b, c = [await enqueue(broker, n) for n in "abc"]
    da = await fetch_one(broker)
    db = await fetch_one(broker)
    assert (da.job_id, db.job_id) == (a.id, b.id)
    d = await enqueue(broker, "d")
    assert await broker.release([LeaseRef(b.id, db.token)]) == [True]
    assert await broker.release([LeaseRef(a.id, da.token)]) == [True]
    order = [(await fetch_one(broker)).job_id for _ in range(4)]
    assert order == [a.id, b.id, c.id, d.id]
    await assert_audit_ok(broker)


async def test_release_does_not_jump_priority(broker: Broker) -> None:
    low = await enqueue(broker, "low", priority=0)
    d = await fetch_one(broker)
    high = await enqueue(broker, "high", priority=1)
    assert await broker.release([LeaseRef(low.id, d.token)]) == [True]
    assert [(await fetch_one(broker)).job_id for _ in range(2)] == [high.id, low.id]
    await assert_audit_ok(broker)
