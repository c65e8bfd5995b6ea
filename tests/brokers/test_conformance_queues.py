"""Calls about many queues or jobs at once, and forgetting an empty queue, on every backend
(issue 11, item 5): batched reads (`get_many`, `paused_queues`) and `forget_queue`, which
must never leave a job in a queue that `queues()` does not list, whatever runs beside it.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from conveyor.brokers.base import LOG_START, Broker, FailItem
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.errors import InvalidState, QueueNotFound, ValidationError
from conveyor.flow import QueueLimits
from conveyor.ids import new_job_id
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    BrokerFactory,
    Q,
    assert_audit_ok,
    enqueue,
    fetch_one,
    redis_of,
)


async def _emptied(broker: Broker, queue: str = Q) -> None:
    """The queue received a job and holds none any more (dead, then purged)."""
    job = await enqueue(broker, queue=queue, max_attempts=1)
    d = await fetch_one(broker, queue=queue)
    assert await broker.fail([FailItem(job.id, d.token, "e", "x")]) == [JobState.DEAD]
    assert await broker.dlq_purge(queue, [job.id]) == [job.id]
    assert sum((await broker.stats([queue]))[queue].values()) == 0


# --- batched reads --------------------------------------------------------------------------


async def test_get_many_reads_jobs_in_order_with_none_for_unknown(broker: Broker) -> None:
    jobs = [await enqueue(broker, {"i": i}, queue=f"q{i % 3}") for i in range(5)]
    unknown = new_job_id("q1")
    ids = [jobs[3].id, unknown, jobs[0].id, jobs[4].id]
    got = await broker.get_many(ids)
    assert [j.id if j else None for j in got] == [jobs[3].id, None, jobs[0].id, jobs[4].id]
    assert got[0] == await broker.get(jobs[3].id)
    assert await broker.get_many([]) == []
    with pytest.raises(ValidationError):
        await broker.get_many(["not an id"])


async def test_get_many_reads_more_jobs_than_a_pool_has_connections(broker: Broker) -> None:
    jobs = [await enqueue(broker, i) for i in range(250)]
    got = await broker.get_many([j.id for j in jobs])
    assert [j.payload for j in got if j is not None] == list(range(250))


async def test_paused_queues_of_many_queues(broker: Broker) -> None:
    names = [f"p{i:03d}" for i in range(300)]
    for name in names[::7]:
        await broker.pause(name)
    assert await broker.paused_queues(names) == set(names[::7])
    assert await broker.paused_queues(names[1:7]) == set()
    assert await broker.paused_queues([]) == set()
    await broker.resume(names[0])
    assert names[0] not in await broker.paused_queues(names)


# --- forget_queue ---------------------------------------------------------------------------


async def test_an_empty_queue_is_forgotten_with_its_paused_flag(broker: Broker) -> None:
    await _emptied(broker)
    await broker.pause(Q)
    assert Q in await broker.queues()
    await broker.forget_queue(Q)
    assert Q not in await broker.queues()
    assert not await broker.is_paused(Q)
    with pytest.raises(QueueNotFound):
        await broker.forget_queue(Q)
    # it comes back with its next job, which runs as usual
    job = await enqueue(broker)
    assert Q in await broker.queues()
    assert (await fetch_one(broker)).job_id == job.id
    await assert_audit_ok(broker)


async def _event_rows_left(broker: Broker, queue: str) -> int:
    """The queue's event log entries, saved cursors and their bookkeeping still stored,
    read underneath the broker's own reads."""
    if isinstance(broker, RedisBroker):
        qk = broker.keys.queue(queue)
        return int(await redis_of(broker).exists(qk.events, qk.cursors, qk.cursor("hooks")))
    assert isinstance(broker, SqliteBroker)
    with sqlite3.connect(broker.path) as conn:
        return sum(int(conn.execute(f"SELECT count(*) FROM {table} WHERE queue = ?",
                                    (queue,)).fetchone()[0])
                   for table in ("events", "event_logs", "event_cursors"))


async def test_forgetting_a_queue_drops_its_event_log_cursors_and_limits(broker: Broker) -> None:
    await _emptied(broker)
    tail = await broker.events_tail(Q)
    await broker.save_cursor(Q, "hooks", tail)
    assert (await broker.read_events(Q, LOG_START)).events
    assert await _event_rows_left(broker, Q) > 0
    await broker.forget_queue(Q)
    assert await _event_rows_left(broker, Q) == 0
    assert await broker.load_cursor(Q, "hooks") is None
    assert (await broker.read_events(Q, LOG_START)).events == []
    # its limits went too (a forgotten queue comes back as new, as its paused flag does)
    await broker.set_limits(Q, QueueLimits(concurrency=3))
    await broker.pause(Q)
    await broker.forget_queue(Q)
    assert await broker.get_limits(Q) is None
    # the queue's next job starts a new log, read after the old cursor too
    job = await enqueue(broker)
    page = await broker.read_events(Q, tail)
    assert [e.job_id for e in page.events] == [job.id]


async def test_a_queue_paused_before_its_first_job_can_be_forgotten(broker: Broker) -> None:
    await broker.pause("never-used")
    await broker.forget_queue("never-used")
    assert not await broker.is_paused("never-used")


async def test_a_queue_holding_any_job_is_not_forgotten(broker: Broker) -> None:
    waiting = await enqueue(broker, queue="busy", delay=3600)
    with pytest.raises(InvalidState) as caught:
        await broker.forget_queue("busy")
    assert caught.value.details == {"queue": "busy", "counts": {"scheduled": 1}}
    await broker.cancel(waiting.id)  # a finished job counts too
    with pytest.raises(InvalidState):
        await broker.forget_queue("busy")
    assert "busy" in await broker.queues()
    assert (await broker.get(waiting.id)).state == JobState.CANCELLED


async def test_unknown_and_malformed_queue_names(broker: Broker) -> None:
    with pytest.raises(QueueNotFound):
        await broker.forget_queue("nobody")
    with pytest.raises(ValidationError):
        await broker.forget_queue("bad name!")


async def test_an_enqueue_after_a_forget_relists_the_queue_in_every_process(
    make_broker: BrokerFactory,
) -> None:
    """A producer that already enqueued into the queue (and may remember having registered
    it) enqueues again after another process forgot it: the queue is listed again."""
    producer, operator = await make_broker(), await make_broker()
    await _emptied(producer)
    await operator.forget_queue(Q)
    job = await enqueue(producer)
    assert Q in await operator.queues()
    assert (await operator.stats([Q]))[Q]["queued"] == 1
    assert (await operator.get(job.id)).state == JobState.QUEUED


async def test_forget_racing_enqueues_never_loses_a_job_from_the_listing(
    make_broker: BrokerFactory,
) -> None:
    """Forget and enqueue sent at the same moment from two processes, round after round:
    either the forget is refused (it saw the job) or the queue is listed again after it."""
    producer, operator = await make_broker(), await make_broker()
    queues = [f"race{i:02d}" for i in range(60)]
    for queue in queues:
        await _emptied(producer, queue)

    async def forget(queue: str) -> bool:
        try:
            await operator.forget_queue(queue)
        except InvalidState:
            return False
        return True

    outcomes = await asyncio.gather(*(
        asyncio.gather(forget(q), enqueue(producer, queue=q)) for q in queues
    ))
    listed = set(await operator.queues())
    for queue, (_, job) in zip(queues, outcomes, strict=True):
        assert queue in listed, f"{queue} holds {job.id} but is not listed"
        assert (await operator.stats([queue]))[queue]["queued"] == 1
