"""Turns Redis hashes back into validated `Job` objects (the rules: `brokers/records.py`).

Everything read back from Redis is checked: a record that does not parse raises `CorruptJob`
naming the job and what is wrong, rather than handing half a job to the API or a worker.
"""

from __future__ import annotations

from typing import Any

from conveyor.brokers.records import build_job
from conveyor.jobs import Job

#: logical field (brokers/records.py) -> the job hash's field
HASH_FIELDS = {
    "state": "state", "type": "type", "payload": "payload", "priority": "prio",
    "attempts": "attempts", "max_attempts": "max_att", "timeout": "timeout", "seq": "seq",
    "created": "created", "run_at": "run_at", "started": "started", "finished": "finished",
    "redrives": "redrives", "result": "result", "result_preview": "rprev",
    "result_size": "rsize", "err_code": "err_code", "err_msg": "err_msg",
    "history": "history", "idem": "idem", "sched_name": "sched", "sched_tick": "stick",
    "worker": "worker", "token": "token", "cancel_token": "ctok", "cancel_by": "cby",
    "progress": "progress",
    "limit_key": "limit_key",
}
#: what a listing reads of each job: every field but the result (`rprev` stands in for it)
LIST_FIELDS = tuple(f for f in HASH_FIELDS.values() if f != "result")


def record_of(h: dict[str, str]) -> dict[str, Any]:
    return {name: h.get(field) for name, field in HASH_FIELDS.items()}


def listed_hash(values: list[str | None]) -> dict[str, str]:
    """An HMGET of LIST_FIELDS as a hash (absent fields left out)."""
    return {f: v for f, v in zip(LIST_FIELDS, values, strict=True) if v is not None}


def job_from_hash(queue: str, uid: str, h: dict[str, str], *, strict: bool = True) -> Job:
    return build_job(f"{queue}:{uid}", queue, record_of(h), strict=strict)
