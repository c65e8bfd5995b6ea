"""The series' roll-up on every backend (issue 18): per-minute counts are kept for the last
day; the retention step (`expire_finished`, the maintenance tick's) rolls each older hour
into one point per hour, exactly (the hour's sums do not change), a bounded number of hours
per call, and two workers rolling up at once count nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3

import pytest

from conveyor.brokers.base import (
    SERIES_KEEP_MINUTES,
    SERIES_MINUTE_SPAN,
    SERIES_ROLLUP_HOURS,
    Broker,
    SeriesPoint,
    last_rollable_hour,
    series_hours,
)
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.errors import ValidationError
from tests.brokers.conformance import BrokerFactory, Q, redis_of

#: (epoch minute, kind 's' / 'f' / 'd', job type, count)
Count = tuple[int, str, str, int]
_COLUMNS = {"s": "succeeded", "f": "failed", "d": "dead"}


async def _plant(broker: Broker, counts: list[Count], queue: str = Q) -> None:
    """Counts as the transitions write them (`count_series`), at any minute: a Redis hour
    hash's `<minute>:<kind>:<type>` and every-type fields with the hour's expiry, or SQLite
    rows."""
    if isinstance(broker, RedisBroker):
        qk = broker.keys.queue(queue)
        pipe = redis_of(broker).pipeline(transaction=False)
        for minute, kind, type_, n in counts:
            key = qk.series(minute // 60)
            pipe.hincrby(key, f"{minute}:{kind}:", n)
            pipe.hincrby(key, f"{minute}:{kind}:{type_}", n)
            pipe.pexpireat(key, (minute // 60 + 1) * 3_600_000 + 7 * 86_400_000)
        await pipe.execute()
        return
    assert isinstance(broker, SqliteBroker)
    with contextlib.closing(sqlite3.connect(broker.path)) as conn, conn:
        for minute, kind, type_, n in counts:
            column = _COLUMNS[kind]
            conn.execute(
                f"INSERT INTO series (queue, minute, type, {column}) VALUES (?, ?, ?, ?)"
                f" ON CONFLICT (queue, minute, type) DO UPDATE SET {column} = {column} + ?",
                (queue, minute, type_, n, n))


async def _minutes_stored(broker: Broker, hours: range, queue: str = Q) -> dict[int, set[int]]:
    """Per hour of `hours`, the minutes it holds counts at (a rolled hour: its first only)."""
    out: dict[int, set[int]] = {h: set() for h in hours}
    if isinstance(broker, RedisBroker):
        client = redis_of(broker)
        for hour in hours:
            for field in await client.hkeys(broker.keys.queue(queue).series(hour)):
                out[hour].add(int(str(field).split(":")[0]))
        return out
    assert isinstance(broker, SqliteBroker)
    with contextlib.closing(sqlite3.connect(broker.path)) as conn:
        for (minute,) in conn.execute(
            "SELECT DISTINCT minute FROM series WHERE queue = ? AND minute BETWEEN ? AND ?",
            (queue, hours.start * 60, hours.stop * 60 - 1)):
            out[minute // 60].add(minute)
    return out


def _assert_same(after: list[SeriesPoint], before: list[SeriesPoint]) -> None:
    """The same points where both reads cover the same step (the clock may have moved the
    window by a minute, or an hour, between them), and the same totals."""
    old, new = {p.minute: p for p in before}, {p.minute: p for p in after}
    common = old.keys() & new.keys()
    assert len(common) >= len(old) - 1
    assert {m: new[m] for m in common} == {m: old[m] for m in common}
    assert all(new[m] == SeriesPoint(m) for m in new.keys() - common)


def _sums(points: list[SeriesPoint]) -> tuple[int, int, int]:
    return (sum(p.succeeded for p in points), sum(p.failed for p in points),
            sum(p.dead for p in points))


async def _week(broker: Broker, type_: str | None = None) -> list[SeriesPoint]:
    return await broker.series(Q, SERIES_KEEP_MINUTES, type_)


def _week_of_counts(now_minute: int) -> list[Count]:
    """Counts at several minutes of every hour of the last week, two types, all kinds."""
    counts: list[Count] = []
    first = series_hours(now_minute, SERIES_KEEP_MINUTES).start
    for hour in range(first + 1, now_minute // 60 + 1):
        for offset in (0, 7, 31, 59):
            minute = hour * 60 + offset
            if minute > now_minute:
                break
            counts.append((minute, "s", "a", 1 + offset % 5))
            counts.append((minute, "f", "b", 2))
            if offset == 31:
                counts.append((minute, "d", "a", 1))
    return counts


async def _roll_all(broker: Broker) -> None:
    for _ in range(SERIES_KEEP_MINUTES // 60 // SERIES_ROLLUP_HOURS + 2):
        await broker.expire_finished(Q)


async def test_rolled_up_hours_equal_their_minutes(broker: Broker) -> None:
    now_minute = await broker.now_ms() // 60_000
    counts = _week_of_counts(now_minute)
    await _plant(broker, counts)
    await _plant(broker, counts[:4], queue="other")
    before = {t: await _week(broker, t) for t in (None, "a", "b", "c")}
    day_before = await broker.series(Q, SERIES_MINUTE_SPAN)
    expected = (sum(n for _, k, _, n in counts if k == "s"),
                sum(n for _, k, _, n in counts if k == "f"),
                sum(n for _, k, _, n in counts if k == "d"))
    assert _sums(before[None]) == expected
    assert _sums(before["a"])[0] == expected[0] and _sums(before["b"])[1] == expected[1]

    await _roll_all(broker)

    now_minute = await broker.now_ms() // 60_000
    for type_ in (None, "a", "b", "c"):  # every hour's sums, per type and of all
        _assert_same(await _week(broker, type_), before[type_])
    _assert_same(await broker.series(Q, SERIES_MINUTE_SPAN), day_before)
    upto = last_rollable_hour(now_minute)
    stored = await _minutes_stored(broker, series_hours(now_minute, SERIES_KEEP_MINUTES))
    for hour, minutes in stored.items():
        if hour <= upto - 1:
            assert minutes <= {hour * 60}, hour  # one point per hour
        elif upto + 2 <= hour < now_minute // 60:
            assert len(minutes) > 1, hour  # still per minute: within the last day
    other = await _minutes_stored(broker, range(counts[0][0] // 60, counts[0][0] // 60 + 1),
                                  queue="other")
    assert len(other[counts[0][0] // 60]) > 1  # another queue's own step rolls it up


async def test_concurrent_roll_ups_count_nothing_twice(make_broker: BrokerFactory) -> None:
    one, two = await make_broker(), await make_broker()
    now_minute = await one.now_ms() // 60_000
    await _plant(one, _week_of_counts(now_minute))
    before = await _week(one)
    for _ in range(SERIES_KEEP_MINUTES // 60 // SERIES_ROLLUP_HOURS + 2):
        await asyncio.gather(one.expire_finished(Q), two.expire_finished(Q),
                             one.expire_finished(Q))
    _assert_same(await _week(two), before)
    await _roll_all(two)  # again, on rolled hours: nothing changes
    _assert_same(await _week(one), before)


async def test_one_step_rolls_a_bounded_number_of_hours(broker: Broker) -> None:
    now_minute = await broker.now_ms() // 60_000
    upto = last_rollable_hour(now_minute)
    old = range(upto - 2 * SERIES_ROLLUP_HOURS, upto + 1)
    await _plant(broker, [(h * 60 + m, "s", "a", 1) for h in old for m in (1, 2)])
    before = await _week(broker)
    await broker.expire_finished(Q)
    rolled = [h for h, mins in (await _minutes_stored(broker, old)).items() if mins == {h * 60}]
    assert 0 < len(rolled) <= SERIES_ROLLUP_HOURS
    _assert_same(await _week(broker), before)
    await _roll_all(broker)
    stored = await _minutes_stored(broker, old)
    assert all(mins == {h * 60} for h, mins in stored.items() if h <= upto - 1)
    _assert_same(await _week(broker), before)


async def test_a_count_late_into_a_rolled_hour_still_counts(broker: Broker) -> None:
    now_minute = await broker.now_ms() // 60_000
    hour = last_rollable_hour(now_minute) - 3
    await _plant(broker, [(hour * 60 + 5, "s", "a", 2)])
    await _roll_all(broker)
    await _plant(broker, [(hour * 60 + 9, "s", "a", 1)])  # a clock stepped back a day
    assert _sums(await _week(broker)) == (3, 0, 0)
    assert _sums(await _week(broker, "a")) == (3, 0, 0)


async def test_steps_and_their_bounds(broker: Broker) -> None:
    for minutes, step in ((1, 60), (SERIES_MINUTE_SPAN, 60), (SERIES_MINUTE_SPAN + 1, 3600),
                          (SERIES_KEEP_MINUTES, 3600)):
        first = await broker.now_ms() // 60_000
        points = await broker.series(Q, minutes)
        last = await broker.now_ms() // 60_000
        sizes = {minutes} if step == 60 else {
            len(series_hours(m, minutes)) for m in range(first, last + 1)}
        assert len(points) in sizes
        assert first <= points[-1].minute + (step // 60 - 1) and points[-1].minute <= last
        assert all(b.minute - a.minute == step // 60 for a, b in itertools.pairwise(points))
    hourly = await broker.series(Q, 1, step_s=3600)
    assert len(hourly) == 1 and hourly[0].minute % 60 == 0
    assert len(await broker.series(Q, 60, step_s=60)) == 60
    for minutes, step_s in ((SERIES_MINUTE_SPAN + 1, 60), (60, 600), (60, 0)):
        with pytest.raises(ValidationError):
            await broker.series(Q, minutes, step_s=step_s)
