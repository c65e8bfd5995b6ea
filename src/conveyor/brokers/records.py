"""A stored job record, checked and turned into a `Job`: one set of rules for both brokers.

A record is a mapping of logical field names (`FIELD_NAMES`) to what the store holds: strings
from a Redis hash, typed values from a SQLite row. `record_problem` applies the rules the Lua
scripts apply (`job_problem` in `redis/lua/_lib.lua`) and the SQLite transitions apply before
they write, so a record every transition accepts is a record `build_job` reads, and a record
one of them sets aside as `corrupt_job` is one `get()` reports as corrupt.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import pydantic
from pydantic_core import from_json

from conveyor.brokers.history import parse_history
from conveyor.errors import CorruptJob, ErrorCode
from conveyor.events.records import progress_from_json
from conveyor.jobs import MAX_EPOCH_MS, Attempt, ErrorInfo, Job, JobSchedule, JobState
from conveyor.queues import PRIORITY_MAX, PRIORITY_MIN
from conveyor.timeutil import ms_to_datetime

STATES = frozenset(str(s) for s in JobState)
#: (field, required, lowest, highest): the integers of a record, as _lib.lua's INT_RULES
INT_FIELDS: tuple[tuple[str, bool, int, int], ...] = (
    ("priority", True, PRIORITY_MIN, PRIORITY_MAX),
    ("attempts", False, 0, 10**9),
    ("max_attempts", True, 1, 10**9),
    ("timeout", False, 0, 10**15),
    ("seq", True, 0, 9 * 10**15),
    ("created", True, 0, MAX_EPOCH_MS),
    ("run_at", False, 0, MAX_EPOCH_MS),
    ("started", False, 0, MAX_EPOCH_MS),
    ("finished", False, 0, MAX_EPOCH_MS),
    ("redrives", False, 0, 10**9),
    ("sched_tick", False, 0, MAX_EPOCH_MS),
)
FIELD_NAMES = ("state", "type", "payload", *(f[0] for f in INT_FIELDS), "result",
               "result_preview", "result_size", "err_code", "err_msg", "history", "idem",
               "sched_name",
               # the lease holder, its token and a cancel request (the token of the delivery
               # asked to stop, and who asked): what `Job.worker` / `cancel_requested` read
               "worker", "token", "cancel_token", "cancel_by")
_INT_RE = re.compile(r"-?[0-9]{1,16}")
_QUOTE_LEN = 40


def _quote(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return "'" + "".join(c if c.isprintable() and c.isascii() else "?"
                         for c in text[:_QUOTE_LEN]) + "'"


def _blank(value: Any) -> bool:
    return value is None or value == ""


def as_int(value: Any, lo: int, hi: int) -> int | None:
    """An integer in [lo, hi] from a store's value (an int, or its decimal text), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and lo <= value <= hi:
        return value
    return None


#: what each transition reads and so checks before it writes (as the scripts' READS/CHECKS
#: lists): a transition checks what it reads, no more; `get()` checks every field
FETCH_CHECKS = ("type", "payload", "attempts", "max_attempts", "timeout")
PROMOTE_CHECKS = ("priority",)
REAP_CHECKS = ("attempts", "max_attempts", "seq", "priority")
ACK_CHECKS = ("attempts",)
FAIL_CHECKS = ("attempts", "max_attempts", "priority")
RELEASE_CHECKS = ("attempts", "seq", "priority")
CANCEL_CHECKS = ("attempts",)
REQUEUE_CHECKS = ("priority",)  # retry, redrive
MOVE_CHECKS = ("priority", "max_attempts", "timeout", "redrives")  # what a move copies


def record_problem(
    rec: Mapping[str, Any], want: str | None = None, checks: Collection[str] | None = None
) -> str | None:
    """What is wrong with the record, or None: its state (`want`: the state of the index the
    caller found it in, which the record must say too), then the fields in `checks` (every
    field when None)."""
    state = rec.get("state")
    if state not in STATES:
        return "field state is missing" if _blank(state) else (
            f"field state is not a job state: {_quote(state)}")
    if want is not None and state != want:
        return f"field state is {_quote(state)} but the job is in the {want} index"
    jtype = rec.get("type")
    if (checks is None or "type" in checks) and (not isinstance(jtype, str) or not jtype):
        return "field type is missing"
    if (checks is None or "payload" in checks) and not isinstance(rec.get("payload"),
                                                                  str | bytes):
        return "field payload is missing"
    for name, required, lo, hi in INT_FIELDS:
        if checks is not None and name not in checks:
            continue
        value = rec.get(name)
        if _blank(value):
            if required:
                return f"field {name} is missing"
        elif as_int(value, lo, hi) is None:
            return f"field {name} is not an integer in [{lo}, {hi}]: {_quote(value)}"
    return None


def _json(rec: Mapping[str, Any], name: str, problems: list[str]) -> Any:
    value = rec.get(name)
    if _blank(value):
        return None
    try:
        return from_json(value if isinstance(value, str | bytes) else str(value))
    except (TypeError, ValueError) as exc:
        problems.append(f"field {name} is not JSON: {exc}")
        return None


def _result(rec: Mapping[str, Any], problems: list[str]) -> tuple[Any, bool, str | None]:
    """(result, truncated, preview). A listing reads the preview stored at ack time instead
    of the result (`result` absent): the whole result when it was short, else its start."""
    if not _blank(rec.get("result")):
        return _json(rec, "result", problems), False, None
    preview = rec.get("result_preview")
    if not isinstance(preview, str) or not preview:
        return None, False, None
    size = as_int(rec.get("result_size"), 0, 2**62)
    if size is not None and size > len(preview):
        return None, True, preview
    return _json({"result": preview}, "result", problems), False, None


def _history(rec: Mapping[str, Any], problems: list[str]) -> list[Attempt]:
    try:
        return parse_history(_text(rec.get("history")))
    except (TypeError, ValueError, ArithmeticError, OSError) as exc:  # pydantic's: ValueError
        problems.append(f"field history does not parse: {str(exc).splitlines()[0]}")
        return []


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _int(rec: Mapping[str, Any], name: str) -> int | None:
    for field, _, lo, hi in INT_FIELDS:
        if field == name:
            return as_int(rec.get(name), lo, hi)
    raise KeyError(name)


def _schedule(rec: Mapping[str, Any]) -> JobSchedule | None:
    name = rec.get("sched_name")
    if not isinstance(name, str) or not name:
        return None
    return JobSchedule(name=name, tick=ms_to_datetime(_int(rec, "sched_tick")))


def build_job(job_id: str, queue: str, rec: Mapping[str, Any], *, strict: bool = True) -> Job:
    """The Job a record holds. A record that does not parse raises CorruptJob naming what is
    wrong (`strict`), or comes back as far as it reads, with `last_error` saying
    `corrupt_job` and what is wrong (listings: one bad record must not hide the others)."""
    problems: list[str] = []
    first = record_problem(rec)
    if first is not None:
        problems.append(first)
    payload = _json(rec, "payload", problems)
    result, truncated, preview = _result(rec, problems)
    history = _history(rec, problems)
    if problems and strict:
        raise CorruptJob(f"job {job_id} has a corrupt record: {problems[0]}",
                         details={"job_id": job_id})
    code, timeout = rec.get("err_code"), _int(rec, "timeout")
    if problems:
        last_error: ErrorInfo | None = ErrorInfo(code=ErrorCode.CORRUPT_JOB, message=problems[0])
    else:
        last_error = (ErrorInfo(code=_text(code), message=_text(rec.get("err_msg")))
                      if code else None)
    state = rec.get("state")
    running = state == JobState.RUNNING
    token, cancel_token = _text(rec.get("token")), _text(rec.get("cancel_token"))
    asked = running and bool(cancel_token) and cancel_token == token
    try:
        return Job(
            id=job_id, type=_text(rec.get("type")), queue=queue, payload=payload,
            state=JobState(state) if state in STATES else JobState.DEAD,
            priority=_int(rec, "priority") or 0, attempts=_int(rec, "attempts") or 0,
            max_attempts=_int(rec, "max_attempts") or 0,
            created_at=ms_to_datetime(_int(rec, "created") or 0),
            run_at=ms_to_datetime(_int(rec, "run_at")),
            started_at=ms_to_datetime(_int(rec, "started")),
            finished_at=ms_to_datetime(_int(rec, "finished")),
            result=result, result_truncated=truncated, result_preview=preview,
            last_error=last_error, history=history,
            idempotency_key=_text(rec.get("idem")) or None,
            limit_key=_text(rec.get("limit_key")) or None,
            timeout_s=timeout / 1000 if timeout is not None else None,
            schedule=_schedule(rec),
            worker=(_text(rec.get("worker")) or None) if running else None,
            cancel_requested=asked,
            cancel_requested_by=(_text(rec.get("cancel_by")) or None) if asked else None,
            progress=progress_from_json(_text(rec.get("progress")) or None),
        )
    except pydantic.ValidationError as exc:  # a field of a type no check above foresaw
        problem = f"record does not parse: {str(exc).splitlines()[0]}"
        if strict:
            raise CorruptJob(f"job {job_id} has a corrupt record: {problem}",
                             details={"job_id": job_id}) from exc
        return Job(id=job_id, type="", queue=queue, payload=None, state=JobState.DEAD,
                   max_attempts=0, created_at=ms_to_datetime(0),
                   last_error=ErrorInfo(code=ErrorCode.CORRUPT_JOB, message=problem))
