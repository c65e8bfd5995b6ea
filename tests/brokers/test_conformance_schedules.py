"""Schedules on every backend (issue 15): storage, the atomic conditional fire step, and the
catch-up / overlap / pause policies carried out by it. Exactly one job per tick whatever the
number of concurrent callers; an identical upsert changes nothing; a deleted schedule fires
nothing. Outages are simulated by moving the stored next tick back (`_rewind`), so no test
waits for the clock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.brokers.base import LOG_START, Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor
from conveyor.errors import CorruptRecord, ScheduleNotFound, ValidationError
from conveyor.ids import new_uid
from conveyor.jobs import JobState
from conveyor.schedules import Schedule
from conveyor.schedules.store import (
    LOOKAHEAD_MS,
    Definition,
    FireEntry,
    due_score,
    plan,
    schedule_store,
)
from conveyor.timeutil import datetime_to_ms
from tests.brokers.conformance import BrokerFactory, assert_audit_ok
from tests.support.typed import as_dict

Q = "sconf"
HOUR_MS = 3_600_000


def _sched(name: str = "s1", **kw: Any) -> Schedule:
    data: dict[str, Any] = {"name": name, "every_s": 3600,
                            "job": {"type": "fake", "queue": Q, "payload": {"result": 1}}}
    data.update(kw)
    return Schedule.parse(data)


async def _rewind(broker: Broker, name: str, next_ms: int, overlap: str = "allow") -> None:
    """Move a schedule's stored next tick back, as if no worker ran since `next_ms`."""
    score = due_score(overlap, next_ms)
    assert score is not None
    if isinstance(broker, RedisBroker):
        qk = broker.keys.queue(Q)
        await broker.client.hset(qk.sched_prefix + name, "next", str(next_ms))
        await broker.client.zadd(qk.sched_due, {name: score})
        return
    assert isinstance(broker, SqliteBroker)
    with sqlite3.connect(broker.path) as conn:
        conn.execute("UPDATE schedules SET next_ms = ?, due_ms = ? WHERE name = ?",
                     (next_ms, score, name))
    conn.close()


async def _jobs_of(client: AsyncConveyor, name: str) -> list[Any]:
    page = await client.schedules.runs(name, limit=1000)
    return page.items


def _anchor(now: int) -> tuple[datetime, int]:
    """A start_at 3.5 h ago for hourly ticks: ticks at -3.5 h, -2.5 h, -1.5 h, -0.5 h."""
    start = now - 3 * HOUR_MS - HOUR_MS // 2
    return datetime.fromtimestamp(start / 1000, UTC), start


async def test_put_get_list_delete_round_trip(client: AsyncConveyor) -> None:
    res = await client.schedules.put(_sched(timezone="Europe/Paris"))
    assert res.created and res.changed
    view = await client.schedules.get("s1")
    assert view == res.schedule
    assert view.every_s == 3600 and view.timezone == "Europe/Paris" and not view.paused
    assert view.job.queue == Q and view.counts.fired == 0 and view.last_run is None
    assert len(view.next_runs) == 5
    steps = {b - a for a, b in zip(view.next_runs, view.next_runs[1:], strict=False)}
    assert steps == {timedelta(hours=1)}
    now = await client.broker.now_ms()
    assert now < datetime_to_ms(view.next_runs[0]) <= now + HOUR_MS
    assert view.description
    page = await client.schedules.list()
    assert [s.name for s in page.items] == ["s1"] and page.next_cursor is None
    await client.schedules.delete("s1")
    with pytest.raises(ScheduleNotFound):
        await client.schedules.get("s1")
    with pytest.raises(ScheduleNotFound):
        await client.schedules.delete("s1")
    assert (await client.schedules.list()).items == []


async def test_list_is_paged_by_name(client: AsyncConveyor) -> None:
    names = [f"n{i:02d}" for i in range(7)]
    for n in reversed(names):
        await client.schedules.put(_sched(n))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await client.schedules.list(limit=3, cursor=cursor)
        assert len(page.items) <= 3
        seen += [s.name for s in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == names


async def test_identical_upsert_changes_nothing_not_even_the_next_tick(
    client: AsyncConveyor,
) -> None:
    first = await client.schedules.put(_sched(every_s=7))
    again = await client.schedules.put(_sched(every_s=7))
    assert not again.created and not again.changed
    assert again.schedule == first.schedule  # same next runs, same updated_at
    # a new payload keeps the timing (and so the next tick)
    other = await client.schedules.put(_sched(every_s=7, job={"type": "fake", "queue": Q,
                                                               "payload": {"result": 2}}))
    assert not other.created and other.changed
    assert other.schedule.next_runs == first.schedule.next_runs
    assert other.schedule.job.payload == {"result": 2}
    # a new timing counts from now
    retimed = await client.schedules.put(_sched(every_s=11))
    assert retimed.changed and retimed.schedule.every_s == 11
    assert {b - a for a, b in zip(retimed.schedule.next_runs, retimed.schedule.next_runs[1:],
                                  strict=False)} == {timedelta(seconds=11)}


async def test_fifty_concurrent_upserts_store_one_schedule(make_broker: BrokerFactory) -> None:
    clients = [AsyncConveyor(await make_broker()) for _ in range(5)]
    results = await asyncio.gather(*(clients[i % 5].schedules.put(_sched(every_s=5))
                                     for i in range(50)))
    assert sum(r.created for r in results) == 1
    assert len({tuple(r.schedule.next_runs) for r in results}) == 1
    assert [s.name for s in (await clients[0].schedules.list()).items] == ["s1"]


async def test_bad_input_stores_nothing(client: AsyncConveyor) -> None:
    with pytest.raises(ValidationError) as err:
        await client.schedules.put(_sched(job={"type": "no.such.type", "queue": Q}))
    assert err.value.details[0]["loc"] == ["job", "type"]
    with pytest.raises(ValidationError):
        await client.schedules.put(_sched(job={"type": "fake", "queue": Q,
                                               "payload": {"duration_ms": "x"}}))
    with pytest.raises(ValidationError):
        await client.schedules.put({"name": "s1", "cron": "* * *", "job": {"type": "fake"}})
    with pytest.raises(ValidationError):
        await client.schedules.put({"name": "s1", "cron": "* * * * *", "every_s": 5,
                                    "job": {"type": "fake"}})
    with pytest.raises(ValidationError):
        await client.schedules.put({"name": "s1", "every_s": 5, "timezone": "Mars/Olympus",
                                    "job": {"type": "fake"}})
    assert (await client.schedules.list()).items == []


async def test_concurrent_fire_of_one_tick_makes_one_job(make_broker: BrokerFactory) -> None:
    clients = [AsyncConveyor(await make_broker()) for _ in range(8)]
    cv = clients[0]
    now = await cv.broker.now_ms()
    start, start_ms = _anchor(now)
    await cv.schedules.put(_sched(start_at=start.isoformat()))
    await _rewind(cv.broker, "s1", start_ms + 3 * HOUR_MS)  # the -0.5 h tick is due
    outs = await asyncio.gather(*(clients[i % 8].schedules.fire_due(Q) for i in range(40)))
    made = [j for batch in outs for o in batch for j in o.job_ids]
    assert len(made) == 1
    jobs = await _jobs_of(cv, "s1")
    assert [j.id for j in jobs] == made
    job = jobs[0]
    assert job.schedule is not None and job.schedule.name == "s1"
    assert job.schedule.tick == datetime.fromtimestamp((start_ms + 3 * HOUR_MS) / 1000, UTC)
    assert job.state == JobState.QUEUED and as_dict(job.payload)["result"] == 1
    view = await cv.schedules.get("s1")
    assert view.counts.fired == 1 and view.counts.missed == 0
    assert view.last_run is not None and view.last_run.job_id == job.id
    assert view.last_run.state == JobState.QUEUED
    assert datetime_to_ms(view.next_runs[0]) == start_ms + 4 * HOUR_MS
    await assert_audit_ok(cv.broker, Q)


async def test_ticks_fire_ahead_as_scheduled_jobs_one_per_tick(
    make_broker: BrokerFactory,
) -> None:
    clients = [AsyncConveyor(await make_broker()) for _ in range(4)]
    cv = clients[0]
    await cv.schedules.put(_sched(every_s=1))
    outs = await asyncio.gather(*(c.schedules.fire_due(Q) for c in clients * 5))
    made = [j for batch in outs for o in batch for j in o.job_ids]
    jobs = await _jobs_of(cv, "s1")
    assert sorted(j.id for j in jobs) == sorted(made)
    ticks = sorted(datetime_to_ms(j.schedule.tick) for j in jobs if j.schedule and
                   j.schedule.tick)
    assert len(ticks) == len(jobs) >= 1
    assert ticks == list(range(ticks[0], ticks[0] + 1000 * len(ticks), 1000))  # no gap, no twin
    now = await cv.broker.now_ms()
    assert ticks[-1] <= now + LOOKAHEAD_MS
    for j in jobs:  # stored as delayed jobs, due at their tick
        assert j.run_at is not None and j.schedule is not None and j.run_at == j.schedule.tick
    view = await cv.schedules.get("s1")
    assert view.counts.fired == len(jobs)
    stored = await schedule_store(cv.broker).get("s1")
    assert stored is not None and stored.next_ms == ticks[-1] + 1000
    # next runs are the ticks still to come, those fired ahead included
    assert datetime_to_ms(view.next_runs[0]) <= ticks[-1]
    assert [datetime_to_ms(t) for t in view.next_runs] == list(range(
        datetime_to_ms(view.next_runs[0]), datetime_to_ms(view.next_runs[0]) + 5000, 1000))


@pytest.mark.parametrize(("catch_up", "max_catch_up", "fired", "missed"), [
    ("none", 100, 0, 4), ("latest", 100, 1, 3), ("all", 100, 4, 0), ("all", 2, 2, 2),
])
async def test_catch_up_policies(
    client: AsyncConveyor, catch_up: str, max_catch_up: int, fired: int, missed: int,
) -> None:
    now = await client.broker.now_ms()
    start, start_ms = _anchor(now)
    await client.schedules.put(_sched(start_at=start.isoformat(), catch_up=catch_up,
                                      max_catch_up=max_catch_up))
    await _rewind(client.broker, "s1", start_ms)  # four ticks came due with no worker
    await client.schedules.fire_due(Q)
    await client.schedules.fire_due(Q)  # nothing more to do
    jobs = await _jobs_of(client, "s1")
    ticks = sorted(datetime_to_ms(j.schedule.tick) for j in jobs if j.schedule and
                   j.schedule.tick)
    assert ticks == [start_ms + k * HOUR_MS for k in range(4 - fired, 4)]
    view = await client.schedules.get("s1")
    assert (view.counts.fired, view.counts.missed) == (fired, missed)
    assert datetime_to_ms(view.next_runs[0]) == start_ms + 4 * HOUR_MS


async def test_overlap_skip_fires_nothing_while_the_previous_job_is_live(
    client: AsyncConveyor,
) -> None:
    now = await client.broker.now_ms()
    await client.schedules.put(_sched(every_s=1, overlap="skip"))
    store = schedule_store(client.broker)

    async def fire_at(tick: int) -> Any:
        st = await store.get("s1")
        assert st is not None and st.next_ms is not None
        d = Definition.of(st.schedule, client.schedules.resolve(st.schedule))
        entry = FireEntry("s1", d.fp, st.next_ms, st.next_ms + 1000, None, (tick,),
                          (new_uid(),))
        (out,) = await store.fire(Q, [entry])
        return out

    first = await fire_at(now - 5000)
    assert first.status == "fired" and len(first.job_ids) == 1
    second = await fire_at(now - 4000)  # the first job is still queued
    assert second.status == "fired" and second.job_ids == () and second.skipped == 1
    await client.cancel(first.job_ids[0])
    third = await fire_at(now - 3000)
    assert third.status == "fired" and len(third.job_ids) == 1
    view = await client.schedules.get("s1")
    assert (view.counts.fired, view.counts.skipped) == (2, 1)
    # a manual trigger is outside the sequence: it runs even while the last job is live
    job = await client.schedules.trigger("s1")
    assert job.schedule is not None and job.schedule.tick is None


async def test_stale_and_changed_fire_steps_change_nothing(client: AsyncConveyor) -> None:
    await client.schedules.put(_sched())
    store = schedule_store(client.broker)
    st = await store.get("s1")
    assert st is not None and st.next_ms is not None
    d = Definition.of(st.schedule, client.schedules.resolve(st.schedule))
    now = await client.broker.now_ms()
    stale = FireEntry("s1", d.fp, st.next_ms - 1, st.next_ms + 1, None, (now,), (new_uid(),))
    changed = FireEntry("s1", "0" * 32, st.next_ms, st.next_ms + 1, None, (now,), (new_uid(),))
    outs = await store.fire(Q, [stale, changed])
    assert [o.status for o in outs] == ["stale", "changed"]
    assert await _jobs_of(client, "s1") == []
    assert (await store.get("s1")) == st


async def test_pause_stops_ticks_and_resume_counts_from_now(client: AsyncConveyor) -> None:
    now = await client.broker.now_ms()
    start, start_ms = _anchor(now)
    await client.schedules.put(_sched(start_at=start.isoformat(), catch_up="all"))
    paused = await client.schedules.pause("s1")
    assert paused.paused and paused.next_runs == []
    assert (await client.schedules.pause("s1")).paused  # idempotent
    await _rewind(client.broker, "s1", start_ms)
    assert await client.schedules.fire_due(Q) == []
    # an identical PUT (paused: false in the body) resumes; an upsert keeping the state not
    kept = await client.schedules.put(_sched(start_at=start.isoformat(), catch_up="all"),
                                      keep_paused=True)
    assert not kept.changed and kept.schedule.paused
    resumed = await client.schedules.resume("s1")
    assert not resumed.paused
    assert datetime_to_ms(resumed.next_runs[0]) == start_ms + 4 * HOUR_MS  # none missed
    await client.schedules.fire_due(Q)
    assert await _jobs_of(client, "s1") == []
    assert (await client.schedules.get("s1")).counts.missed == 0
    with pytest.raises(ScheduleNotFound):
        await client.schedules.pause("nope")
    # declared paused in code: created paused, and a later sync keeps what it finds
    declared = await client.schedules.put(_sched("d1", paused=True), keep_paused=True)
    assert declared.created and declared.schedule.paused
    await client.schedules.resume("d1")
    again = await client.schedules.put(_sched("d1", paused=True), keep_paused=True)
    assert not again.changed and not again.schedule.paused


async def test_trigger_enqueues_now_outside_the_sequence(client: AsyncConveyor) -> None:
    put = await client.schedules.put(_sched())
    job = await client.schedules.trigger("s1")
    assert job.state == JobState.QUEUED and job.queue == Q and as_dict(job.payload)["result"] == 1
    assert job.schedule is not None and job.schedule.name == "s1" and job.schedule.tick is None
    view = await client.schedules.get("s1")
    assert view.next_runs == put.schedule.next_runs and view.counts.fired == 0
    assert view.last_run is not None and view.last_run.job_id == job.id
    assert view.last_run.tick is None
    other = await client.enqueue("fake", {}, queue=Q)
    assert other.schedule is None and (await client.get(other.id)).schedule is None
    with pytest.raises(ScheduleNotFound):
        await client.schedules.trigger("nope")


async def test_a_job_a_schedule_makes_is_in_the_event_log(
    client: AsyncConveyor, broker: Broker,
) -> None:
    await client.schedules.put(_sched())
    job = await client.schedules.trigger("s1")
    events = (await broker.read_events(Q, LOG_START, limit=1000)).events
    assert [(e.event, e.state) for e in events if e.job_id == job.id] == [
        ("enqueued", "queued")]


async def test_runs_are_newest_first_and_paged(client: AsyncConveyor) -> None:
    await client.schedules.put(_sched())
    made = [(await client.schedules.trigger("s1")).id for _ in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = await client.schedules.runs("s1", limit=2, cursor=cursor)
        seen += [j.id for j in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(made))
    with pytest.raises(ScheduleNotFound):
        await client.schedules.runs("nope")


async def test_delete_during_a_fire_makes_at_most_the_job_of_the_fire(
    make_broker: BrokerFactory,
) -> None:
    cv = AsyncConveyor(await make_broker())
    other = AsyncConveyor(await make_broker())
    now = await cv.broker.now_ms()
    start, start_ms = _anchor(now)
    for _ in range(5):
        await cv.schedules.put(_sched(start_at=start.isoformat()))
        await _rewind(cv.broker, "s1", start_ms + 3 * HOUR_MS)
        fired, _ = await asyncio.gather(cv.schedules.fire_due(Q), other.schedules.delete("s1"))
        with pytest.raises(ScheduleNotFound):
            await cv.schedules.get("s1")
        assert await cv.schedules.fire_due(Q) == []
        made = [j for o in fired for j in o.job_ids]
        assert len(made) <= 1
    # a fire planned before the delete and sent after it finds nothing
    await cv.schedules.put(_sched(start_at=start.isoformat()))
    await _rewind(cv.broker, "s1", start_ms + 3 * HOUR_MS)
    store = schedule_store(cv.broker)
    now, rows = await store.due(Q)
    entry = plan(rows[0], now)
    assert entry is not None
    await cv.schedules.delete("s1")
    (out,) = await store.fire(Q, [entry])
    assert out.status == "gone" and out.job_ids == ()
    await assert_audit_ok(cv.broker, Q)


async def test_moving_a_schedule_to_another_queue(client: AsyncConveyor) -> None:
    await client.schedules.put(_sched())
    moved = await client.schedules.put(_sched(job={"type": "fake", "queue": "sconf2"}))
    assert not moved.created and moved.schedule.job.queue == "sconf2"
    assert [s.job.queue for s in (await client.schedules.list()).items] == ["sconf2"]
    assert (await schedule_store(client.broker).due(Q))[1] == []
    job = await client.schedules.trigger("s1")
    assert job.queue == "sconf2"


async def _damage(broker: Broker, name: str, field: str, value: str) -> None:
    """Overwrite one field of a stored schedule, as a bad write or hand edit would."""
    if isinstance(broker, RedisBroker):
        await broker.client.hset(broker.keys.queue(Q).sched_prefix + name, field, value)
        return
    assert isinstance(broker, SqliteBroker)
    column = {"def": "def", "job": "job"}[field]
    with sqlite3.connect(broker.path) as conn:
        conn.execute(f"UPDATE schedules SET {column} = ? WHERE name = ?", (value, name))
    conn.close()


async def test_a_corrupt_schedule_never_hides_or_stops_the_others(client: AsyncConveyor) -> None:
    now = await client.broker.now_ms()
    start, start_ms = _anchor(now)
    for name in ("bad", "good"):
        await client.schedules.put(_sched(name, start_at=start.isoformat()))
        await _rewind(client.broker, name, start_ms + 3 * HOUR_MS)
    await _damage(client.broker, "bad", "def", "{not json")
    assert [s.name for s in (await client.schedules.list()).items] == ["good"]
    with pytest.raises(CorruptRecord):
        await client.schedules.get("bad")
    await client.schedules.fire_due(Q)  # the bad one is skipped, the good one fires
    assert len(await _jobs_of(client, "good")) == 1
    # a job template that does not parse: the fire step refuses, nothing is written
    await client.schedules.put(_sched("tpl", start_at=start.isoformat()))
    await _rewind(client.broker, "tpl", start_ms + 3 * HOUR_MS)
    await _damage(client.broker, "tpl", "job", '["fake"]')
    store = schedule_store(client.broker)
    now, rows = await store.due(Q)
    entries = [e for r in rows if r.name == "tpl" and (e := plan(r, now)) is not None]
    assert [o.status for o in await store.fire(Q, entries)] == ["corrupt"]
    assert await _jobs_of(client, "tpl") == []


@pytest.mark.backend("redis")
async def test_a_counter_that_is_not_an_integer_stops_the_step_before_any_write(
    client: AsyncConveyor,
) -> None:
    now = await client.broker.now_ms()
    start, start_ms = _anchor(now)
    await client.schedules.put(_sched(start_at=start.isoformat()))
    await _rewind(client.broker, "s1", start_ms + 3 * HOUR_MS)
    assert isinstance(client.broker, RedisBroker)
    await client.broker.client.hset(client.broker.keys.queue(Q).sched_prefix + "s1",
                                    "fired", "1e3")
    outs = await client.schedules.fire_due(Q)
    assert [o.status for o in outs] == ["corrupt"]
    assert (await schedule_store(client.broker).runs("s1", Q, 10, None)).items == []
    with pytest.raises(CorruptRecord):  # the API answers 409 corrupt_record
        await client.schedules.get("s1")
    assert await client.broker.stats([Q]) in ({}, {Q: dict.fromkeys(map(str, JobState), 0)})
