"""Job logs on every broker: lines kept in order with their job, written only by the lease
holder, bounded (the last 200 lines within 64 KiB), and deleted with the job wherever a job
is deleted (retention, DLQ purge, a move to another queue)."""

from __future__ import annotations

import sqlite3
from typing import Any

from conveyor.brokers.base import AckItem, Broker, FailItem, LeaseRef, LogAppend
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.ids import split_job_id
from conveyor.joblogs import MAX_BYTES, MAX_LINES, decode_lines, encode_line
from tests.brokers.conformance import (
    BrokerFactory,
    Q,
    assert_audit_ok,
    enqueue,
    fetch_one,
    ms,
    redis_of,
    wait_broker_time,
)

OTHER = "conf-other"


def lines(attempt: int, *texts: str) -> list[str]:
    return [encode_line(1_700_000_000_000 + i, "INFO", attempt, t) for i, t in enumerate(texts)]


def messages(raw: list[str]) -> list[str]:
    return [line.message for line in decode_lines(raw)]


async def stored_anywhere(broker: Broker, job_id: str) -> int:
    """Log lines of `job_id` still in the store, read underneath the broker's own reads."""
    queue, uid = split_job_id(job_id)
    if isinstance(broker, RedisBroker):
        return int(await redis_of(broker).llen(broker.keys.queue(queue).logs(uid)))
    assert isinstance(broker, SqliteBroker)
    with sqlite3.connect(broker.path) as conn:
        (left,) = conn.execute(
            "SELECT count(*) FROM job_logs WHERE job NOT IN (SELECT id FROM jobs)").fetchone()
        return int(left)


async def test_lines_are_kept_in_order_by_the_lease_holder_only(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=3)
    d = await fetch_one(broker)
    assert await broker.append_logs([LogAppend(job.id, d.token, lines(1, "a", "b"))]) == [True]
    assert await broker.append_logs([LogAppend(job.id, d.token, lines(1, "c"))]) == [True]
    assert await broker.append_logs([LogAppend(job.id, "stale.0", lines(1, "x"))]) == [False]
    assert await broker.append_logs([LogAppend(job.id, d.token, [])]) == [True]
    assert messages(await broker.job_logs(job.id)) == ["a", "b", "c"]

    # a retry keeps the earlier attempt's lines; the old token is refused
    assert await broker.fail([FailItem(job.id, d.token, "e", "m", retry_delay_ms=0)])
    again = await fetch_one(broker)
    assert again.token != d.token
    results = await broker.append_logs([LogAppend(job.id, d.token, lines(1, "late")),
                                        LogAppend(job.id, again.token, lines(2, "d"))])
    assert results == [False, True]
    kept = decode_lines(await broker.job_logs(job.id))
    assert [(k.attempt, k.message) for k in kept] == [(1, "a"), (1, "b"), (1, "c"), (2, "d")]

    # a finished job takes no more lines, and keeps the ones it has
    assert await broker.ack([AckItem(job.id, again.token)]) == [True]
    assert await broker.append_logs([LogAppend(job.id, again.token, lines(2, "z"))]) == [False]
    assert len(await broker.job_logs(job.id)) == 4
    # unknown and never-logging jobs read as no lines
    other = await enqueue(broker)
    assert await broker.job_logs(other.id) == []
    assert await broker.job_logs(f"{Q}:{'0' * 32}") == []
    await assert_audit_ok(broker)


async def test_one_call_serves_jobs_of_several_queues(broker: Broker) -> None:
    a = await enqueue(broker, queue=Q)
    b = await enqueue(broker, queue=OTHER)
    da, db = await fetch_one(broker, queue=Q), await fetch_one(broker, queue=OTHER)
    out = await broker.append_logs([LogAppend(a.id, da.token, lines(1, "in a")),
                                    LogAppend(b.id, db.token, lines(1, "in b")),
                                    LogAppend(a.id, db.token, lines(1, "wrong token"))])
    assert out == [True, True, False]
    assert messages(await broker.job_logs(a.id)) == ["in a"]
    assert messages(await broker.job_logs(b.id)) == ["in b"]
    await assert_audit_ok(broker, Q)
    await assert_audit_ok(broker, OTHER)


async def test_the_last_lines_are_kept_within_both_bounds(broker: Broker) -> None:
    job = await enqueue(broker)
    d = await fetch_one(broker)
    texts = [f"line {i}" for i in range(MAX_LINES + 50)]
    for start in range(0, len(texts), 70):
        batch = lines(1, *texts[start:start + 70])
        assert await broker.append_logs([LogAppend(job.id, d.token, batch)]) == [True]
    assert messages(await broker.job_logs(job.id)) == texts[-MAX_LINES:]

    big = "x" * 1900  # about 1.95 KB a line: 64 KiB holds 33 of them
    for i in range(3):
        batch = lines(1, *[f"{i}-{j} {big}" for j in range(20)])
        assert await broker.append_logs([LogAppend(job.id, d.token, batch)]) == [True]
    raw = await broker.job_logs(job.id)
    assert sum(len(line.encode()) for line in raw) <= MAX_BYTES
    assert len(raw) == MAX_BYTES // len(raw[-1].encode())  # as many as fit, no fewer
    assert messages(raw)[-1] == f"2-19 {big}"  # the newest kept, oldest dropped first
    # one call with more lines than the bound keeps its last ones
    many = lines(1, *[f"m{i}" for i in range(MAX_LINES * 2)])
    assert await broker.append_logs([LogAppend(job.id, d.token, many)]) == [True]
    assert messages(await broker.job_logs(job.id)) == [f"m{i}" for i in range(MAX_LINES,
                                                                             MAX_LINES * 2)]
    await assert_audit_ok(broker)


async def _logged(broker: Broker, *, queue: str = Q, **kw: Any) -> tuple[str, str]:
    job = await enqueue(broker, queue=queue, **kw)
    d = await fetch_one(broker, queue=queue)
    assert await broker.append_logs([LogAppend(job.id, d.token, lines(1, "kept"))]) == [True]
    return job.id, d.token


async def test_lines_are_deleted_with_the_job(make_broker: BrokerFactory) -> None:
    broker = await make_broker(retention_s=0.2, dlq_retention_s=3600)
    # retention
    done, token = await _logged(broker)
    assert await broker.ack([AckItem(done, token)]) == [True]
    finished = ms((await broker.get(done)).finished_at)
    await wait_broker_time(broker, finished + 202)
    assert await broker.expire_finished(Q) == 1
    assert await broker.job_logs(done) == [] and await stored_anywhere(broker, done) == 0
    # DLQ purge
    dead, token = await _logged(broker)
    assert await broker.fail([FailItem(dead, token, "e", "m")])
    assert await broker.dlq_purge(Q, [dead]) == [dead]
    assert await broker.job_logs(dead) == [] and await stored_anywhere(broker, dead) == 0
    # a move to another queue: the old job is deleted with its lines, the new one has a copy
    moved, token = await _logged(broker)
    assert await broker.fail([FailItem(moved, token, "e", "m")])
    ((old, new),) = await broker.dlq_move(Q, [moved], OTHER, "api")
    assert old == moved
    assert await broker.job_logs(moved) == [] and await stored_anywhere(broker, moved) == 0
    assert messages(await broker.job_logs(new)) == ["kept"]
    # a released job keeps its lines (it is the same job, to run again)
    held, token = await _logged(broker)
    assert await broker.release([LeaseRef(held, token)]) == [True]
    assert messages(await broker.job_logs(held)) == ["kept"]
    await assert_audit_ok(broker, Q)
    await assert_audit_ok(broker, OTHER)
