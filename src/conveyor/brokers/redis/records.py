"""Turns Redis hashes back into validated `Job` objects (the rules: `brokers/records.py`).

Everything read back from Redis is checked: a record that does not parse raises `CorruptJob`
naming the job and what is wrong, rather than handing half a job to the API or a worker.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

from conveyor.brokers.records import as_int, build_job
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
    rec = {name: h.get(field) for name, field in HASH_FIELDS.items()}
    if rec["state"] == "succeeded":
        rec["history"] = with_implied_success(h)
    return rec


def with_implied_success(h: dict[str, str]) -> str:
    """A SUCCEEDED job's history with the line of its succeeding attempt. `ack.lua` writes
    none (the record holds all of it: attempts, worker, started, finished), so the hash stays
    a listpack; a record acked before that (its history ends in a `succeeded` line) already
    has it. The line is the one `add_history` in _lib.lua would have written."""
    text = h.get("history") or ""
    last = text.rstrip("\n").rpartition("\n")[2]
    if '"outcome":"succeeded"' in last:
        return text
    line = to_json({
        "attempt": _json_int(h.get("attempts")), "worker": h.get("worker") or None,
        "started_at": _json_int(h.get("started")),
        "finished_at": _json_int(h.get("finished")), "outcome": "succeeded",
        "error_code": None, "message": None, "traceback": None,
    }).decode()
    return f"{text}{line}\n"


def _json_int(value: str | None) -> int | None:
    """`json_int` of _lib.lua: a decimal integer field as a number, else null."""
    return as_int(value, -9 * 10**15, 9 * 10**15)


def listed_hash(values: list[str | None]) -> dict[str, str]:
    """An HMGET of LIST_FIELDS as a hash (absent fields left out)."""
    return {f: v for f, v in zip(LIST_FIELDS, values, strict=True) if v is not None}


def job_from_hash(queue: str, uid: str, h: dict[str, str], *, strict: bool = True) -> Job:
    return build_job(f"{queue}:{uid}", queue, record_of(h), strict=strict)
