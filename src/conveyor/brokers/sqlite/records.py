"""Job rows in and out: the column list, history lines, scores, and row -> validated `Job`.

Everything read back is checked: a row that does not parse raises `CorruptJob` naming the
job, as the Redis broker does for a damaged hash.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

from conveyor.brokers.records import build_job
from conveyor.jobs import Job, Outcome

#: Every column `row_to_job` reads, in order: (queue, uid), then the logical fields of
#: brokers/records.py
ROW_FIELDS = {
    "state": "state", "type": "type", "payload": "payload", "priority": "priority",
    "attempts": "attempts", "max_attempts": "max_attempts", "timeout": "timeout_ms",
    "seq": "seq", "created": "created_ms", "run_at": "run_at_ms", "started": "started_ms",
    "finished": "finished_ms", "redrives": "redrives", "result": "result",
    "result_preview": "result_preview", "result_size": "result_size",
    "err_code": "err_code", "err_msg": "err_msg", "history": "history", "idem": "idem",
    "sched_name": "sched_name", "sched_tick": "sched_tick",
    "worker": "worker", "token": "token", "cancel_token": "cancel_token",
    "cancel_by": "cancel_by",
    "progress": "progress",
    "limit_key": "limit_key",
}
JOB_COLUMNS = "queue, uid, " + ", ".join(ROW_FIELDS.values())
#: JOB_COLUMNS as listings read them: the result only where no preview was stored (rows
#: acked before previews existed), so SQLite never loads a long result's pages for a list
LIST_COLUMNS = JOB_COLUMNS.replace(
    " result,", " CASE WHEN result_size IS NULL THEN result END,", 1)
#: the columns every transition checks before it writes (`record_problem`), after `id`
CORE_FIELDS = tuple(ROW_FIELDS)[:13]
CORE_COLUMNS = ", ".join(ROW_FIELDS[f] for f in CORE_FIELDS)


class CoreRow(NamedTuple):
    """What the transitions read of a job (`select_core`): its row id, the CORE_FIELDS as
    stored (unchecked until `record_problem` passes them: hence Any), and the lease fields."""

    id: int
    state: Any
    type: Any
    payload: Any
    priority: Any
    attempts: Any
    max_attempts: Any
    timeout: Any
    seq: Any
    created: Any
    run_at: Any
    started: Any
    finished: Any
    redrives: Any
    worker: Any
    token: Any
    cancel_token: Any
    cancel_by: Any
    trace: Any
    uid: str


assert CoreRow._fields[1:14] == CORE_FIELDS
_CORE_SELECT = (f"SELECT id, {CORE_COLUMNS}, worker, token, cancel_token, cancel_by, trace, uid"
                " FROM jobs WHERE ")


def _core_row(_cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> CoreRow:
    return CoreRow._make(row)


def select_core(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> list[CoreRow]:
    """The CoreRow of every job matching `where` (SQL after WHERE, with ? marks)."""
    cur = conn.execute(_CORE_SELECT + where, params)
    cur.row_factory = _core_row
    return list(cur)

#: Priorities span [-1000, 1000] and seq stays below 2**42, so the score fits in 63 bits.
_PRIORITY_SHIFT = 1 << 42


def queued_score(priority: int, seq: int) -> int:
    """Higher priority first, then FIFO by the queue's seq (the Redis score, unchanged)."""
    return -priority * _PRIORITY_SHIFT + seq


def history_line(
    attempt: int, worker: str | None, started: int | None, finished: int | None,
    outcome: Outcome, code: str | None = None, message: str | None = None,
    traceback: str | None = None,
) -> str:
    """One JSON line of a job's history, the same fields and order as the Redis scripts."""
    return json.dumps(
        {
            "attempt": attempt, "worker": worker or None, "started_at": started,
            "finished_at": finished, "outcome": str(outcome),
            "error_code": str(code) if code else None,
            "message": message or None, "traceback": traceback or None,
        },
        ensure_ascii=False, separators=(",", ":"),
    ) + "\n"


def core_of(row: CoreRow) -> dict[str, Any]:
    """The logical record of a row's CORE_FIELDS, for `record_problem`."""
    return {name: getattr(row, name) for name in CORE_FIELDS}


def row_to_job(row: sqlite3.Row | tuple[Any, ...], *, strict: bool = True) -> Job:
    """Build a Job from a row selected with JOB_COLUMNS."""
    queue, uid, *values = row
    return build_job(f"{queue}:{uid}", queue, dict(zip(ROW_FIELDS, values, strict=True)),
                     strict=strict)
