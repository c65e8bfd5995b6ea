"""Invariant 5 (bounded attempts): attempts are charged at fetch, refunded by release, and a job
never runs more than max_attempts times; each attempt leaves a line of history.
"""

from __future__ import annotations

from conveyor.brokers.base import AckItem, Broker, FailItem, LeaseRef
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    assert_audit_ok,
    deliver_with_short_lease,
    enqueue,
    expire_and_reap,
    fetch_none,
    fetch_one,
    ms,
    wait_broker_time,
)


async def test_lease_expiry_on_the_last_attempt_goes_dead(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=2)
    d, now = await deliver_with_short_lease(broker, 30)
    assert d.attempts == 1 and d.max_attempts == 2
    assert await expire_and_reap(broker, now, 30) == (1, 0)
    d, now = await deliver_with_short_lease(broker, 30)
    assert d.attempts == 2
    assert await expire_and_reap(broker, now, 30) == (0, 1)

    dead = await broker.get(job.id)
    assert dead.state == JobState.DEAD
    assert dead.attempts == 2
    assert dead.last_error is not None and dead.last_error.code == "lease_expired"
    assert dead.finished_at is not None
    assert [(h.attempt, h.error_code) for h in dead.history] == [
        (1, "lease_expired"),
        (2, "lease_expired"),
    ]
    assert dead.history[-1].outcome == "dead"
    await fetch_none(broker)
    await assert_audit_ok(broker)


async def test_fail_on_the_last_attempt_goes_dead_even_when_retry_is_asked(
    broker: Broker,
) -> None:
    job = await enqueue(broker, max_attempts=2)
    d = await fetch_one(broker)
    assert await broker.fail([FailItem(job.id, d.token, "e", "1st", retry_delay_ms=0)]) == [
        JobState.QUEUED
    ]
    d = await fetch_one(broker)
    assert d.attempts == 2
    assert await broker.fail(
        [FailItem(job.id, d.token, "smtp_transient", "2nd", retry_delay_ms=0)]
    ) == [JobState.DEAD]
    dead = await broker.get(job.id)
    assert dead.state == JobState.DEAD
    assert dead.last_error is not None
    assert (dead.last_error.code, dead.last_error.message) == ("smtp_transient", "2nd")
    await fetch_none(broker)
    await assert_audit_ok(broker)


async def test_fail_without_retry_goes_dead_with_attempts_left(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=5)
    d = await fetch_one(broker)
    item = FailItem(job.id, d.token, "permanent_failure", "no point", retry_delay_ms=None)
    assert await broker.fail([item]) == [JobState.DEAD]
    dead = await broker.get(job.id)
    assert dead.attempts == 1
    assert dead.last_error is not None and dead.last_error.code == "permanent_failure"
    await assert_audit_ok(broker)


async def test_fail_with_a_delay_schedules_the_retry_on_the_broker_clock(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=3)
    d = await fetch_one(broker)
    before = await broker.now_ms()
    assert await broker.fail([FailItem(job.id, d.token, "e", "m", retry_delay_ms=200)]) == [
        JobState.SCHEDULED
    ]
    after = await broker.now_ms()
    got = await broker.get(job.id)
    assert got.state == JobState.SCHEDULED
    assert before + 200 <= ms(got.run_at) <= after + 200
    await fetch_none(broker)
    await wait_broker_time(broker, ms(got.run_at))
    d = await fetch_one(broker)
    assert d.attempts == 2
    await assert_audit_ok(broker)


async def test_release_refunds_the_attempt(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=1)
    for _ in range(4):  # however often a worker shuts down, the job never dies of it
        d = await fetch_one(broker)
        assert d.attempts == 1
        assert (await broker.get(job.id)).attempts == 1
        assert await broker.release([LeaseRef(job.id, d.token)]) == [True]
        released = await broker.get(job.id)
        assert released.state == JobState.QUEUED
        assert released.attempts == 0
    assert [h.outcome for h in released.history] == ["released"] * 4

    d = await fetch_one(broker)
    assert await broker.fail([FailItem(job.id, d.token, "e", "m", retry_delay_ms=0)]) == [
        JobState.DEAD
    ]
    await assert_audit_ok(broker)


async def test_history_records_every_attempt(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=3)
    for n in (1, 2):
        d = await fetch_one(broker, worker=f"worker-{n}")
        item = FailItem(job.id, d.token, f"code{n}", f"failure {n}", f"tb {n}", retry_delay_ms=0)
        assert await broker.fail([item]) == [JobState.QUEUED]
    d = await fetch_one(broker, worker="worker-3")
    assert await broker.ack([AckItem(job.id, d.token, '"done"')]) == [True]

    got = await broker.get(job.id)
    assert got.state == JobState.SUCCEEDED
    assert got.attempts == 3
    assert got.result == "done"
    h = got.history
    assert [(a.attempt, a.worker, a.outcome) for a in h] == [
        (1, "worker-1", "failed"),
        (2, "worker-2", "failed"),
        (3, "worker-3", "succeeded"),
    ]
    assert [(a.error_code, a.message) for a in h[:2]] == [
        ("code1", "failure 1"),
        ("code2", "failure 2"),
    ]
    assert h[0].traceback == "tb 1"
    assert h[2].error_code is None
    for a in h:
        assert a.started_at is not None and a.finished_at is not None
        assert a.started_at <= a.finished_at
    assert h[0].finished_at <= h[1].started_at  # type: ignore[operator]
    await assert_audit_ok(broker)
