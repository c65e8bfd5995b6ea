"""The Redis job record's compact form and the enqueue's registry add (issue 19).

`ack.lua` writes no history line for the succeeding attempt (the record holds it: attempts,
worker, started, finished; `redis/records.py` adds the line on read), so a retained
SUCCEEDED job's hash stays a listpack. A job acked by the previous version carries that line
in its history: it reads back the same, never with the line twice.
"""

from __future__ import annotations

import pytest

from conveyor.brokers.base import AckItem, Broker, FailItem
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import Outcome
from tests.brokers.conformance import Q, assert_audit_ok, enqueue, fetch_one

pytestmark = pytest.mark.backend("redis")

#: the history line the previous ack.lua wrote (add_history in _lib.lua, before issue 19)
OLD_LINE = ('{"attempt":%d,"worker":"w","started_at":%s,"finished_at":%s,"outcome":"succeeded",'
            '"error_code":null,"message":null,"traceback":null}\n')


def _key(broker: RedisBroker, job_id: str) -> str:
    return broker.keys.queue(Q).job_prefix + job_id.split(":", 1)[1]


async def test_a_succeeded_job_keeps_a_listpack_and_reads_its_attempt(broker: Broker) -> None:
    """(Stored without a trace context: with tracing on, the `trace` field alone is over
    hash-max-listpack-value.)"""
    assert isinstance(broker, RedisBroker)
    spec = AsyncConveyor(broker, validate_types=False).build_spec(
        JobRequest(type="t", payload={"n": 1}, queue=Q))[0]
    (job,) = await broker.enqueue([spec])
    d = await fetch_one(broker, worker="w")
    assert await broker.ack([AckItem(d.job_id, d.token, '"done"')]) == [True]
    key = _key(broker, job.job_id)
    assert await broker.client.hget(key, "history") is None
    assert await broker.client.object("encoding", key) == "listpack"
    got = await broker.get(job.job_id)
    assert [(a.attempt, a.worker, a.outcome) for a in got.history] == [(1, "w", Outcome.SUCCEEDED)]
    assert got.history[0].started_at == got.started_at
    assert got.history[0].finished_at == got.finished_at
    (listed,) = (await broker.list_jobs(queue=Q)).items
    assert listed.history == got.history
    await assert_audit_ok(broker)


async def test_earlier_attempts_come_before_the_implied_one(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=3)
    d = await fetch_one(broker, worker="w")
    await broker.fail([FailItem(d.job_id, d.token, "boom", "first", retry_delay_ms=0)])
    d = await fetch_one(broker, worker="w")
    assert await broker.ack([AckItem(d.job_id, d.token)]) == [True]
    got = await broker.get(job.id)
    assert [(a.attempt, a.outcome) for a in got.history] == [
        (1, Outcome.FAILED), (2, Outcome.SUCCEEDED)]


async def test_a_job_acked_by_the_previous_version_reads_the_same(broker: Broker) -> None:
    """A record written before the upgrade: its history ends in the `succeeded` line."""
    assert isinstance(broker, RedisBroker)
    job = await enqueue(broker, {"n": 1})
    d = await fetch_one(broker, worker="w")
    assert await broker.ack([AckItem(d.job_id, d.token)]) == [True]
    key = _key(broker, job.id)
    started, finished = await broker.client.hmget(key, "started", "finished")
    await broker.client.hset(key, "history", OLD_LINE % (1, started, finished))
    got = await broker.get(job.id)
    assert [(a.attempt, a.worker, a.outcome) for a in got.history] == [(1, "w", Outcome.SUCCEEDED)]
    assert got.history[0].finished_at == got.finished_at
    await assert_audit_ok(broker)


async def test_the_registry_add_is_sent_for_new_queues_and_retried_calls(broker: Broker) -> None:
    """enqueue.lua says when the registry needs the queue (its seq counter was new, or a job
    was sent again): every other enqueue is one script call, with no SADD beside it."""
    assert isinstance(broker, RedisBroker)
    client = AsyncConveyor(broker, validate_types=False)
    spec = client.build_spec(JobRequest(type="t", queue=Q))[0]
    await broker.enqueue([spec])
    assert Q in await broker.queues()
    await broker.client.srem(broker.keys.queues, Q)  # as if the add after the call was lost
    await enqueue(broker)
    assert Q not in await broker.queues()  # a known counter: no add
    (again,) = await broker.enqueue([spec])  # the caller sends the first call again
    assert again.job_id == spec.id
    assert Q in await broker.queues()
    assert (await broker.stats([Q]))[Q]["queued"] == 2  # stored once
