"""The job event log (issue 17): every transition appends its event in the same atomic step,
in order per job; reads after a cursor are bounded; the log stays within its bound and says
when events after a cursor were trimmed (a gap). Run against every broker.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict

import pytest

from conveyor.brokers.base import LOG_START, AckItem, Broker, FailItem, LeaseRef
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.errors import ValidationError
from conveyor.events.model import EventName, JobEvent
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    BrokerFactory,
    Q,
    deliver_with_short_lease,
    enqueue,
    expire_and_reap,
    fetch_one,
    ms,
    wait_broker_time,
)

E = EventName


async def all_events(broker: Broker, queue: str = Q) -> list[JobEvent]:
    out: list[JobEvent] = []
    cursor = LOG_START
    while True:
        page = await broker.read_events(queue, cursor, limit=100)
        assert not page.gap
        out += page.events
        if not page.events:
            return out
        cursor = page.cursor


def history(events: list[JobEvent], job_id: str) -> list[tuple[str, str]]:
    return [(str(e.event), str(e.state)) for e in events if e.job_id == job_id]


async def test_every_transition_appends_its_event_in_order(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=3, delay=0.05)
    await wait_broker_time(broker, ms(job.run_at))
    assert await broker.promote_due(Q) == 1
    d = await fetch_one(broker)
    assert await broker.fail([FailItem(job.id, d.token, "boom", "m", retry_delay_ms=0)]) == [
        JobState.QUEUED]
    d = await fetch_one(broker)
    assert await broker.release([LeaseRef(job.id, d.token)]) == [True]
    d, now = await deliver_with_short_lease(broker)
    assert await expire_and_reap(broker, now, 30) == (1, 0)
    d = await fetch_one(broker)
    assert await broker.fail([FailItem(job.id, d.token, "fatal", "m")]) == [JobState.DEAD]
    await broker.retry(job.id)
    d = await fetch_one(broker)
    assert await broker.fail([FailItem(job.id, d.token, "fatal", "m")]) == [JobState.DEAD]
    assert await broker.dlq_redrive(Q, [job.id]) == [job.id]
    d = await fetch_one(broker)
    assert await broker.ack([AckItem(job.id, d.token, '{"ok": 1}')]) == [True]

    other = await enqueue(broker)
    await broker.cancel(other.id)

    events = await all_events(broker)
    assert history(events, job.id) == [
        (E.SCHEDULED, "scheduled"), (E.ENQUEUED, "queued"), (E.STARTED, "running"),
        (E.RETRYING, "queued"), (E.STARTED, "running"), (E.RELEASED, "queued"),
        (E.STARTED, "running"), (E.LEASE_EXPIRED, "queued"), (E.STARTED, "running"),
        (E.DEAD, "dead"), (E.REDRIVEN, "queued"), (E.STARTED, "running"), (E.DEAD, "dead"),
        (E.REDRIVEN, "queued"), (E.STARTED, "running"), (E.SUCCEEDED, "succeeded"),
    ]
    assert history(events, other.id) == [(E.ENQUEUED, "queued"), (E.CANCELLED, "cancelled")]
    mine = [e for e in events if e.job_id == job.id]
    assert [e.attempt for e in mine[:5]] == [0, 0, 1, 1, 2]
    assert mine[3].error_code == "boom" and mine[9].error_code == "fatal"
    assert mine[7].error_code == "lease_expired"
    assert {e.type for e in mine} == {"conf.task"} and {e.queue for e in events} == {Q}
    ats = [e.at for e in events]
    assert ats == sorted(ats)
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids)
    assert await broker.events_tail(Q) == ids[-1]
    # the cursor of the last page: nothing after it
    page = await broker.read_events(Q, ids[-1])
    assert page.events == [] and page.cursor == ids[-1] and not page.gap


async def test_dead_on_last_lease_and_moves_are_events(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=1)
    _, now = await deliver_with_short_lease(broker)
    assert await expire_and_reap(broker, now, 30) == (0, 1)
    [(_, new_id)] = await broker.dlq_move(Q, [job.id], "conf2", "test")
    events = await all_events(broker)
    dead = [e for e in events if e.job_id == job.id][-1]
    assert (dead.event, dead.state, dead.error_code) == (E.DEAD, "dead", "lease_expired")
    moved = await all_events(broker, "conf2")
    assert [(e.job_id, e.event, e.state) for e in moved] == [(new_id, E.REDRIVEN, "queued")]


async def test_a_running_job_cancelled_by_its_holder_or_by_reaping_is_an_event(
    broker: Broker,
) -> None:
    job = await enqueue(broker, max_attempts=3)
    d = await fetch_one(broker)
    await broker.cancel(job.id, actor="api")  # a request: no transition, no event yet
    assert await broker.cancel_running([LeaseRef(job.id, d.token)]) == [True]
    reaped = await enqueue(broker, max_attempts=3)
    _, now = await deliver_with_short_lease(broker)
    await broker.cancel(reaped.id, actor="api")
    await expire_and_reap(broker, now, 30)
    events = await all_events(broker)
    for job_id in (job.id, reaped.id):
        assert history(events, job_id)[-2:] == [(E.STARTED, "running"),
                                                (E.CANCELLED, "cancelled")]
    assert (await broker.get(reaped.id)).state == JobState.CANCELLED


async def test_reads_are_bounded_and_resume_from_the_cursor(broker: Broker) -> None:
    from conveyor.client import AsyncConveyor, JobRequest

    client = AsyncConveyor(broker, validate_types=False)
    jobs = await client.enqueue_many(
        [JobRequest(type="conf.task", payload=i, queue=Q) for i in range(25)])
    page = await broker.read_events(Q, LOG_START, limit=10)
    assert len(page.events) == 10 and page.cursor == page.events[-1].id
    rest = await broker.read_events(Q, page.cursor, limit=100)
    assert [e.job_id for e in page.events + rest.events] == [j.job_id for j in jobs]
    for bad in ("", "abc", "1-2-3", "-1", "9" * 40):
        with pytest.raises(ValidationError):
            await broker.read_events(Q, bad)
    for limit in (0, 1001):
        with pytest.raises(ValidationError):
            await broker.read_events(Q, LOG_START, limit=limit)
    assert (await broker.read_events("empty-q", LOG_START)).events == []
    assert await broker.events_tail("empty-q") == LOG_START


async def test_the_log_stays_within_its_bound_and_reports_the_gap(
    make_broker: BrokerFactory, backend: str,
) -> None:
    broker = await make_broker(events_maxlen=50)
    from conveyor.client import AsyncConveyor, JobRequest

    client = AsyncConveyor(broker, validate_types=False)
    first = await client.enqueue("conf.task", 0, queue=Q)
    page = await broker.read_events(Q, LOG_START)
    cursor = page.cursor
    for start in range(0, 600, 100):
        await client.enqueue_many(
            [JobRequest(type="conf.task", payload=i, queue=Q) for i in range(start, start + 100)])
    slack = 100 if backend.startswith("redis") else 0  # Redis trims whole stream nodes (100)
    kept: list[JobEvent] = []
    page = await broker.read_events(Q, cursor, limit=1000)
    assert page.gap, "events after the cursor were trimmed: the read must say so"
    kept = page.events
    assert 50 <= len(kept) <= 50 + slack
    assert first.id not in {e.job_id for e in kept}
    # the newest events are kept, in order, and reading on from the last one has no gap
    assert kept[-1].id == await broker.events_tail(Q)
    after = await broker.read_events(Q, kept[-1].id)
    assert after.events == [] and not after.gap
    assert not (await broker.read_events(Q, kept[0].id)).gap


async def test_events_off(make_broker: BrokerFactory) -> None:
    broker = await make_broker(events_maxlen=0)
    job = await enqueue(broker)
    d = await fetch_one(broker)
    assert await broker.ack([AckItem(job.id, d.token)]) == [True]
    page = await broker.read_events(Q, LOG_START)
    assert page.events == [] and not page.gap
    job_now, cursor = await broker.get_with_cursor(job.id)
    assert job_now.state == JobState.SUCCEEDED and cursor == LOG_START


async def test_wait_events(broker: Broker) -> None:
    tail = await broker.events_tail(Q)
    assert not await broker.wait_events(Q, tail, 0.05)
    waiting = asyncio.create_task(broker.wait_events(Q, tail, 5.0))
    await asyncio.sleep(0.05)
    await enqueue(broker)
    assert await asyncio.wait_for(waiting, 6.0)


async def test_snapshots_agree_with_the_log_under_concurrent_transitions(
    broker: Broker,
) -> None:
    """Atomic with the transition: whatever moment a job and its queue's log position are
    read together, the job's last event at or before that position names its state (an
    event written in a separate step would be seen missing, or early)."""
    from conveyor.client import AsyncConveyor, JobRequest

    client = AsyncConveyor(broker, validate_types=False)
    jobs = await client.enqueue_many(
        [JobRequest(type="conf.task", payload=i, queue=Q, max_attempts=3) for i in range(60)])
    snapshots: list[tuple[str, JobState, str]] = []
    done = asyncio.Event()

    async def work(name: str) -> None:
        while True:
            batch = await broker.fetch(Q, 3, name, LONG_LEASE_MS)
            if not batch.deliveries:
                return
            for i, d in enumerate(batch.deliveries):
                if d.attempts == 1 and i % 2:
                    await broker.fail([FailItem(d.job_id, d.token, "x", "m", retry_delay_ms=0)])
                else:
                    await broker.ack([AckItem(d.job_id, d.token)])

    async def watch() -> None:
        k = 0
        while not done.is_set():
            job, cursor = await broker.get_with_cursor(jobs[k % len(jobs)].job_id)
            snapshots.append((job.id, job.state, cursor))
            k += 7
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(work(f"w{i}") for i in range(3)))
    done.set()
    await watcher
    events = await all_events(broker)
    by_job: dict[str, list[JobEvent]] = defaultdict(list)
    for e in events:
        by_job[e.job_id].append(e)
    position = {e.id: i for i, e in enumerate(events)}
    assert len(snapshots) > 20
    for job_id, state, cursor in snapshots:
        upto = -1 if cursor == LOG_START else position[cursor]
        seen = [e for e in by_job[job_id] if position[e.id] <= upto]
        assert seen and seen[-1].state == state, (job_id, state, cursor, seen[-1:])
    for job in jobs:
        assert by_job[job.job_id][-1].state == JobState.SUCCEEDED


@pytest.mark.backend("sqlite")
async def test_sqlite_a_transition_whose_event_cannot_be_written_does_not_happen(
    broker: Broker,
) -> None:
    job = await enqueue(broker)
    assert isinstance(broker, SqliteBroker)
    conn = sqlite3.connect(broker.path)
    conn.execute("CREATE TRIGGER no_events BEFORE INSERT ON events"
                 " BEGIN SELECT RAISE(ABORT, 'events refused'); END")
    conn.close()
    with pytest.raises(sqlite3.IntegrityError):
        await broker.fetch(Q, 1, "w", LONG_LEASE_MS)
    assert (await broker.get(job.id)).state == JobState.QUEUED
    conn = sqlite3.connect(broker.path)
    conn.execute("DROP TRIGGER no_events")
    conn.close()
    d = await fetch_one(broker)
    assert d.job_id == job.id


async def test_followers_save_their_cursor(broker: Broker) -> None:
    assert await broker.load_cursor(Q, "webhooks") is None
    await enqueue(broker)
    tail = await broker.events_tail(Q)
    await broker.save_cursor(Q, "webhooks", tail)
    assert await broker.load_cursor(Q, "webhooks") == tail
    assert await broker.load_cursor(Q, "other") is None
    await broker.save_cursor(Q, "webhooks", LOG_START)
    assert await broker.load_cursor(Q, "webhooks") == LOG_START
    for name, cursor in (("Bad Name", tail), ("webhooks", "nope"), ("", tail)):
        with pytest.raises(ValidationError):
            await broker.save_cursor(Q, name, cursor)


async def test_progress_is_fenced_stored_and_emitted(broker: Broker) -> None:
    from conveyor.brokers.base import ProgressItem

    job = await enqueue(broker)
    assert await broker.progress([ProgressItem(job.id, "no-lease", 0.1)]) == [False]
    d = await fetch_one(broker)
    assert await broker.progress([ProgressItem(job.id, d.token, 0.25, "a quarter"),
                                  ProgressItem(job.id, "stale", 0.9)]) == [True, False]
    stored = (await broker.get(job.id)).progress
    assert stored is not None and (stored.value, stored.message) == (0.25, "a quarter")
    assert await broker.progress([ProgressItem(job.id, d.token, 40)]) == [True]
    for value in (-1, float("nan"), float("inf"), True):
        with pytest.raises(ValidationError):
            await broker.progress([ProgressItem(job.id, d.token, value)])
    with pytest.raises(ValidationError):
        await broker.progress([ProgressItem(job.id, d.token, 1, "x" * 1001)])
    assert await broker.ack([AckItem(job.id, d.token)]) == [True]
    assert await broker.progress([ProgressItem(job.id, d.token, 1.0)]) == [False]
    done = await broker.get(job.id)
    assert done.progress is not None and done.progress.value == 40
    events = [e for e in await all_events(broker) if e.event == E.PROGRESS]
    assert [(e.progress.value, e.progress.message) for e in events if e.progress] == [
        (0.25, "a quarter"), (40, None)]
    assert {(e.state, e.attempt) for e in events} == {(JobState.RUNNING, 1)}
    assert events[0].as_json()["progress"]["message"] == "a quarter"
