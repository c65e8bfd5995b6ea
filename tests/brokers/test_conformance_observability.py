"""Observability reads on every backend (issue 18): how long the oldest ready job has waited
(the autoscaling signal), and the due time a delivery carries (the worker's queue wait)."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from conveyor.brokers.base import (
    SERIES_KEEP_MINUTES,
    SERIES_MINUTE_SPAN,
    AckItem,
    Broker,
    FailItem,
    LeaseRef,
    SeriesPoint,
)
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.errors import ValidationError
from conveyor.flow import QueueLimits
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    TYPE,
    Q,
    enqueue,
    expire_and_reap,
    fetch_one,
    ms,
    redis_of,
    wait_broker_time,
)


async def _age_bounds(broker: Broker, due_ms: int, queue: str = Q) -> tuple[int, int, int]:
    """(lowest possible, reported, highest possible) age of a job due at `due_ms`."""
    before = await broker.now_ms()
    age = (await broker.ready_ages([queue]))[queue]
    after = await broker.now_ms()
    return before - due_ms, age, after - due_ms


async def test_no_waiting_job_reads_zero(broker: Broker) -> None:
    assert await broker.ready_ages([Q, "other"]) == {Q: 0, "other": 0}
    await enqueue(broker)
    await fetch_one(broker)  # running: it waits for no worker
    assert (await broker.ready_ages([Q]))[Q] == 0
    assert await broker.ready_ages([]) == {}


async def test_age_of_a_queued_job_counts_from_its_due_time(broker: Broker) -> None:
    job = await enqueue(broker)
    await wait_broker_time(broker, ms(job.run_at) + 40)
    low, age, high = await _age_bounds(broker, ms(job.run_at))
    assert 40 <= low <= age <= high
    await broker.pause(Q)  # a paused queue's jobs still wait
    low, age, high = await _age_bounds(broker, ms(job.run_at))
    assert low <= age <= high


async def test_the_starved_low_priority_job_is_the_oldest(broker: Broker) -> None:
    old = await enqueue(broker, priority=-5)
    await wait_broker_time(broker, ms(old.run_at) + 30)
    await enqueue(broker, priority=5)  # delivered first, but younger
    await enqueue(broker, priority=-5)
    low, age, high = await _age_bounds(broker, ms(old.run_at))
    assert 30 <= low <= age <= high


async def test_a_due_scheduled_job_waits_before_it_is_promoted(broker: Broker) -> None:
    job = await enqueue(broker, delay=0.05)
    assert (await broker.ready_ages([Q]))[Q] == 0  # not due yet
    await wait_broker_time(broker, ms(job.run_at) + 20)
    low, age, high = await _age_bounds(broker, ms(job.run_at))
    assert 20 <= low <= age <= high


async def test_jobs_a_limited_fetch_moved_into_key_lanes_still_wait(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(key_concurrency=1))
    await enqueue(broker, limit_key="a")
    held = await enqueue(broker, limit_key="a")  # behind the first: its key is full
    late = await enqueue(broker, limit_key="b")
    await wait_broker_time(broker, ms(late.run_at) + 30)
    got = (await broker.fetch(Q, 1, "w1", LONG_LEASE_MS)).deliveries  # drains every lane
    assert len(got) == 1
    assert await broker.limited_counts([Q]) == {Q: 2}
    low, age, high = await _age_bounds(broker, ms(held.run_at))
    assert 30 <= low <= age <= high


async def test_a_delivery_carries_its_due_time_and_lease_start(broker: Broker) -> None:
    job = await enqueue(broker, delay=0.02)
    await wait_broker_time(broker, ms(job.run_at) + 1)
    batch = await broker.fetch(Q, 1, "w1", 60_000)
    (d,) = batch.deliveries
    assert d.due_ms == ms(job.run_at)
    assert d.leased_ms == batch.now_ms
    assert d.leased_ms >= d.due_ms


# --- per-minute series, written by the transitions themselves -----------------------------


def _sums(points: list[SeriesPoint]) -> tuple[int, int, int]:
    return (sum(p.succeeded for p in points), sum(p.failed for p in points),
            sum(p.dead for p in points))


async def test_series_totals_equal_what_happened(broker: Broker) -> None:
    before = await broker.now_ms()
    a = [await enqueue(broker, i, type="a", max_attempts=3) for i in range(3)]
    b1 = await enqueue(broker, type="b", max_attempts=2)
    b2 = await enqueue(broker, type="b", max_attempts=3)
    await enqueue(broker, type="c")  # only ever released: counted nowhere

    async def take(job_id: str, lease_ms: int = LONG_LEASE_MS) -> tuple[str, int]:
        """Lease every waiting job, keep `job_id`'s, hand the others back (a release is
        not counted)."""
        batch = await broker.fetch(Q, 10, "w", lease_ms)
        others = [LeaseRef(d.job_id, d.token) for d in batch.deliveries if d.job_id != job_id]
        assert await broker.release(others) == [True] * len(others)
        (mine,) = [d for d in batch.deliveries if d.job_id == job_id]
        return mine.token, batch.now_ms

    token, _ = await take(a[0].id)
    assert await broker.ack([AckItem(a[0].id, token)]) == [True]
    token, _ = await take(a[1].id)
    assert await broker.fail([FailItem(a[1].id, token, "e", "m", retry_delay_ms=0)]) == [
        JobState.QUEUED]
    token, _ = await take(a[1].id)
    assert await broker.ack([AckItem(a[1].id, token)]) == [True]
    assert await broker.ack([AckItem(a[1].id, token)]) == [True]  # resent: counted once
    token, _ = await take(a[2].id)
    assert await broker.fail([FailItem(a[2].id, token, "e", "m")]) == [JobState.DEAD]

    stale, at = await take(b1.id, lease_ms=30)
    assert await expire_and_reap(broker, at, 30) == (1, 0)  # a failed attempt, requeued
    assert await broker.ack([AckItem(b1.id, stale)]) == [False]  # stale: counted nowhere
    _, at = await take(b1.id, lease_ms=30)
    assert await expire_and_reap(broker, at, 30) == (0, 1)  # its last attempt: dead
    token, _ = await take(b2.id)
    assert await broker.fail([FailItem(b2.id, token, "e", "m", retry_delay_ms=60_000)]) == [
        JobState.SCHEDULED]

    every = await broker.series(Q, 60)
    after = await broker.now_ms()
    assert len(every) == 60
    assert [p.minute for p in every] == list(range(every[0].minute, every[0].minute + 60))
    assert before // 60_000 <= every[-1].minute <= after // 60_000
    assert _sums(every) == (2, 3, 2)
    assert _sums(await broker.series(Q, 60, type="a")) == (2, 1, 1)
    assert _sums(await broker.series(Q, 60, type="b")) == (0, 2, 1)
    assert _sums(await broker.series(Q, 60, type="c")) == (0, 0, 0)
    assert _sums(await broker.series("other", 60)) == (0, 0, 0)


async def test_series_arguments_are_checked(broker: Broker) -> None:
    assert len(await broker.series(Q, SERIES_KEEP_MINUTES)) in (168, 169)  # hours
    assert len(await broker.series(Q, SERIES_MINUTE_SPAN)) == SERIES_MINUTE_SPAN
    assert len(await broker.series(Q, 1)) == 1
    for minutes in (0, SERIES_KEEP_MINUTES + 1, -5):
        with pytest.raises(ValidationError):
            await broker.series(Q, minutes)
    with pytest.raises(ValidationError):
        await broker.series(Q, 5, type="no spaces")
    with pytest.raises(ValidationError):
        await broker.series("not a queue!", 5)


@pytest.mark.backend("redis")
async def test_redis_series_hash_expires_a_week_after_its_hour(broker: Broker) -> None:
    job = await enqueue(broker)
    d = await fetch_one(broker)
    assert await broker.ack([AckItem(job.id, d.token)]) == [True]
    now = await broker.now_ms()
    assert isinstance(broker, RedisBroker)
    key = broker.keys.queue(Q).series(now // 3_600_000)
    client = redis_of(broker)
    ttl_ms = await client.pttl(key)
    hour_end = (now // 3_600_000 + 1) * 3_600_000
    assert hour_end + 7 * 86_400_000 - now - 5_000 <= ttl_ms <= hour_end + 7 * 86_400_000 - now
    fields = await client.hgetall(key)
    minute = now // 60_000
    assert fields in ({f"{minute}:s:": "1", f"{minute}:s:{TYPE}": "1"},
                      {f"{minute - 1}:s:": "1", f"{minute - 1}:s:{TYPE}": "1"})


@pytest.mark.backend("sqlite")
async def test_sqlite_series_rows_go_a_week_after_their_hour(broker: Broker) -> None:
    assert isinstance(broker, SqliteBroker)
    now = await broker.now_ms()
    hour = now // 3_600_000
    kept, gone = (hour - 7 * 24) * 60, (hour - 7 * 24) * 60 - 1
    with contextlib.closing(sqlite3.connect(broker.path)) as conn, conn:
        conn.executemany(
            "INSERT INTO series (queue, minute, type, succeeded) VALUES (?, ?, 't', 1)",
            [(Q, kept), (Q, gone), ("other", gone)])
    await broker.expire_finished(Q)
    with contextlib.closing(sqlite3.connect(broker.path)) as conn:
        rows = sorted(conn.execute("SELECT queue, minute FROM series").fetchall())
    assert rows == sorted([(Q, kept), ("other", gone)])  # the other queue's own step purges it
