"""Reaching past the Broker protocol into each backend's store, for tests that damage it on
purpose: plant a corrupt field, or undo a write the way a lost write would (a Redis restarted
from a stale AOF/RDB, a failover to a lagging replica, a SQLite file after a power cut).

Fields are named once here (`FIELDS`) and mapped to each backend's own name, so one test runs
on both brokers.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from conveyor.brokers.base import Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.ids import split_job_id
from conveyor.jobs import JobState

#: logical field -> (Redis hash field, SQLite column)
FIELDS: dict[str, tuple[str, str]] = {
    "state": ("state", "state"),
    "type": ("type", "type"),
    "payload": ("payload", "payload"),
    "priority": ("prio", "priority"),
    "attempts": ("attempts", "attempts"),
    "max_attempts": ("max_att", "max_attempts"),
    "timeout": ("timeout", "timeout_ms"),
    "seq": ("seq", "seq"),
    "created": ("created", "created_ms"),
    "run_at": ("run_at", "run_at_ms"),
    "started": ("started", "started_ms"),
    "finished": ("finished", "finished_ms"),
    "redrives": ("redrives", "redrives"),
    "result": ("result", "result"),
    "result_preview": ("rprev", "result_preview"),
    "history": ("history", "history"),
}

#: a value standing for "the field is missing": HDEL in Redis; in SQLite, whose columns are
#: NOT NULL, the nearest damage a row can carry (an empty string where a number belongs)
MISSING = object()


def _raw(broker: SqliteBroker) -> sqlite3.Connection:
    return sqlite3.connect(broker.path, isolation_level=None, timeout=10)


async def damage(broker: Broker, job_id: str, field: str, value: Any) -> None:
    """Overwrite one field of a stored job with `value` (or MISSING), bypassing every check."""
    queue, uid = split_job_id(job_id)
    redis_field, column = FIELDS[field]
    if isinstance(broker, RedisBroker):
        key = broker.keys.queue(queue).job(uid)
        if value is MISSING:
            await broker.client.hdel(key, redis_field)
        else:
            await broker.client.hset(key, redis_field, value)
        return
    assert isinstance(broker, SqliteBroker)
    if value is MISSING:
        value = ""
    with closing(_raw(broker)) as conn:
        conn.execute(f"UPDATE jobs SET {column} = ? WHERE queue = ? AND uid = ?",
                     (value, queue, uid))


@dataclass(frozen=True, slots=True)
class Snapshot:
    job_id: str
    #: Redis: (hash, {index key: score}); SQLite: the row as {column: value}
    data: Any


async def snapshot(broker: Broker, job_id: str) -> Snapshot:
    """Everything stored about one job: its record and where it is indexed."""
    queue, uid = split_job_id(job_id)
    if isinstance(broker, RedisBroker):
        qk = broker.keys.queue(queue)
        record = await broker.client.hgetall(qk.job(uid))
        scores = {}
        for state in JobState:
            score = await broker.client.zscore(qk.index(state), uid)
            if score is not None:
                scores[qk.index(state)] = score
        return Snapshot(job_id, (record, scores))
    assert isinstance(broker, SqliteBroker)
    with closing(_raw(broker)) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM jobs WHERE queue = ? AND uid = ?",
                           (queue, uid)).fetchone()
    return Snapshot(job_id, dict(row))


async def restore(broker: Broker, snap: Snapshot) -> None:
    """Put the job back exactly as `snap` saw it, as if every write since had been lost."""
    queue, uid = split_job_id(snap.job_id)
    if isinstance(broker, RedisBroker):
        record, scores = snap.data
        qk = broker.keys.queue(queue)
        pipe = broker.client.pipeline(transaction=True)
        pipe.delete(qk.job(uid))
        pipe.hset(qk.job(uid), mapping=record)
        for state in JobState:
            pipe.zrem(qk.index(state), uid)
        for key, score in scores.items():
            pipe.zadd(key, {uid: score})
        await pipe.execute()
        return
    assert isinstance(broker, SqliteBroker)
    row = dict(snap.data)
    rid = row.pop("id")
    with closing(_raw(broker)) as conn:
        conn.execute(f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in row)} WHERE id = ?",
                     (*row.values(), rid))


async def raw_fields(broker: Broker, job_id: str, *fields: str) -> list[Any]:
    """Stored values of a job's fields (logical names, see FIELDS; also `err_code`,
    `err_msg`), read raw: for records that do not parse as a Job."""
    queue, uid = split_job_id(job_id)
    names = {**FIELDS, "err_code": ("err_code", "err_code"), "err_msg": ("err_msg", "err_msg")}
    if isinstance(broker, RedisBroker):
        key = broker.keys.queue(queue).job(uid)
        return list(await broker.client.hmget(key, [names[f][0] for f in fields]))
    assert isinstance(broker, SqliteBroker)
    with closing(_raw(broker)) as conn:
        row = conn.execute(
            f"SELECT {', '.join(names[f][1] for f in fields)} FROM jobs"
            " WHERE queue = ? AND uid = ?", (queue, uid),
        ).fetchone()
    return list(row) if row is not None else [None] * len(fields)


async def indexed_in(broker: Broker, job_id: str) -> list[str]:
    """The state indexes that hold the job (SQLite: its state column, if a real state)."""
    queue, uid = split_job_id(job_id)
    if isinstance(broker, RedisBroker):
        qk = broker.keys.queue(queue)
        return [str(s) for s in JobState
                if await broker.client.zscore(qk.index(s), uid) is not None]
    (state,) = await raw_fields(broker, job_id, "state")
    return [state] if state in {str(s) for s in JobState} else []
