"""Job rows in and out: the column list, history lines, scores, and row -> validated `Job`.

Everything read back is checked: a row that does not parse raises `CorruptJob` naming the
job, as the Redis broker does for a damaged hash.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pydantic
from pydantic_core import from_json

from conveyor.brokers.history import parse_history
from conveyor.errors import CorruptJob
from conveyor.jobs import ErrorInfo, Job, JobState
from conveyor.timeutil import ms_to_datetime

#: Every column `row_to_job` reads, in order.
JOB_COLUMNS = (
    "queue, uid, type, payload, state, priority, attempts, max_attempts, timeout_ms,"
    " created_ms, run_at_ms, started_ms, finished_ms, result, err_code, err_msg, history, idem"
)

#: Priorities span [-1000, 1000] and seq stays below 2**42, so the score fits in 63 bits.
_PRIORITY_SHIFT = 1 << 42


def queued_score(priority: int, seq: int) -> int:
    """Higher priority first, then FIFO by the queue's seq (the Redis score, unchanged)."""
    return -priority * _PRIORITY_SHIFT + seq


def history_line(
    attempt: int, worker: str | None, started: int | None, finished: int | None, outcome: str,
    code: str | None = None, message: str | None = None, traceback: str | None = None,
) -> str:
    """One JSON line of a job's history, the same fields and order as the Redis scripts."""
    return json.dumps(
        {
            "attempt": attempt, "worker": worker or None, "started_at": started,
            "finished_at": finished, "outcome": outcome, "error_code": code or None,
            "message": message or None, "traceback": traceback or None,
        },
        ensure_ascii=False, separators=(",", ":"),
    ) + "\n"


def _opt_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _int(value: Any) -> int:
    got = _opt_int(value)
    if got is None:
        raise ValueError("missing integer")
    return got


def row_to_job(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    """Build a Job from a row selected with JOB_COLUMNS."""
    (queue, uid, jtype, payload, state, priority, attempts, max_attempts, timeout_ms,
     created, run_at, started, finished, result, err_code, err_msg, history, idem) = row
    job_id = f"{queue}:{uid}"
    try:
        timeout = _opt_int(timeout_ms)
        return Job(
            id=job_id,
            type=jtype,
            queue=queue,
            payload=from_json(payload),
            state=JobState(state),
            priority=_int(priority),
            attempts=_int(attempts),
            max_attempts=_int(max_attempts),
            created_at=ms_to_datetime(_int(created)),  # type: ignore[arg-type]
            run_at=ms_to_datetime(_opt_int(run_at)),
            started_at=ms_to_datetime(_opt_int(started)),
            finished_at=ms_to_datetime(_opt_int(finished)),
            result=from_json(result) if result else None,
            last_error=ErrorInfo(code=err_code, message=err_msg or "") if err_code else None,
            history=parse_history(history or ""),
            idempotency_key=idem or None,
            timeout_s=timeout / 1000 if timeout is not None else None,
        )
    except (TypeError, ValueError, pydantic.ValidationError) as exc:
        raise CorruptJob(
            f"job {job_id} has a corrupt record: {exc}", details={"job_id": job_id}
        ) from exc
