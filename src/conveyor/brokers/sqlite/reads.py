"""Reads that change nothing, each run in one read transaction (a WAL snapshot): listings,
stats, the audit, and the cheap probe behind `wait_for_work`.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

from conveyor.brokers.base import AuditReport
from conveyor.brokers.sqlite import flow
from conveyor.brokers.sqlite.records import LIST_COLUMNS, queued_score
from conveyor.jobs import TERMINAL_STATES, JobState

_STATES = {str(s) for s in JobState}


def newest_uids(
    conn: sqlite3.Connection, queues: Sequence[str], before: str | None, scan: int
) -> list[tuple[str, str, str, str]]:
    """The `scan` newest jobs across `queues` with uid < `before`, as (uid, queue, state,
    type), newest first. Each queue is read through its (queue, uid) index and the results
    merged, so the cost is bounded by `scan` per queue, however large the table."""
    found: list[tuple[str, str, str, str]] = []
    for queue in queues:
        found += conn.execute(
            "SELECT uid, queue, state, type FROM jobs WHERE queue = ? AND uid < ?"
            " ORDER BY uid DESC LIMIT ?",
            (queue, before if before is not None else "g", scan),  # "g" > any hex digit
        ).fetchall()
    found.sort(reverse=True)
    return found[:scan]


def list_page(
    conn: sqlite3.Connection, queues: Sequence[str], state: str | None, type: str | None,
    limit: int, cursor: str | None, scan: int,
) -> tuple[list[Any], str | None]:
    """One page of `list_jobs`: full rows newest first, and the next cursor (the last uid
    looked at) when older candidates may remain."""
    cands = newest_uids(conn, queues, cursor, scan)
    picked: list[tuple[str, str]] = []
    last, more = (cands[-1][0] if cands else None), len(cands) == scan
    for i, (uid, queue, st, ty) in enumerate(cands):
        if (state is None or st == state) and (type is None or ty == type):
            picked.append((uid, queue))
            if len(picked) == limit:
                last, more = uid, more or i < len(cands) - 1
                break
    return jobs_by_uid(conn, picked), last if more else None


def jobs_by_uid(conn: sqlite3.Connection, picked: Sequence[tuple[str, str]]) -> list[Any]:
    """Full rows of (uid, queue) pairs, in the given order (missing ones skipped)."""
    rows = []
    for uid, queue in picked:
        row = conn.execute(
            f"SELECT {LIST_COLUMNS} FROM jobs WHERE queue = ? AND uid = ?", (queue, uid)
        ).fetchone()
        if row is not None:
            rows.append(row)
    return rows


def dead_page(conn: sqlite3.Connection, queue: str, limit: int, offset: int) -> list[Any]:
    """The DLQ newest first by finish time (the Redis dead index order, offset cursor)."""
    return conn.execute(
        f"SELECT {LIST_COLUMNS} FROM jobs WHERE queue = ? AND state = 'dead'"
        " ORDER BY score DESC LIMIT ? OFFSET ?",
        (queue, limit, offset),
    ).fetchall()


def stats(conn: sqlite3.Connection, queues: Sequence[str]) -> dict[str, dict[str, int]]:
    out = {q: {str(s): 0 for s in JobState} for q in queues}
    for queue, counts in out.items():
        for state, n in conn.execute(
            "SELECT state, count(*) FROM jobs WHERE queue = ? GROUP BY state", (queue,)
        ):
            if state in counts:
                counts[state] = int(n)
    return out


#: 2**42: the width of one priority's band of queued scores
PRIORITY_SHIFT = queued_score(-1, 0)


def ready_ages(conn: sqlite3.Connection, queues: Sequence[str], now: int) -> dict[str, int]:
    """ms since the oldest ready job of each queue became due (0: none waits). The same three
    looks as Redis' ready_age.lua (head of the queued order, head of the lowest priority
    waiting, earliest due SCHEDULED job), each an index seek: bounded per queue."""
    out: dict[str, int] = {}
    for queue in queues:
        dues: list[int] = []
        head = conn.execute(
            "SELECT run_at_ms FROM jobs WHERE queue = ? AND state = 'queued' ORDER BY score"
            " LIMIT 1", (queue,)).fetchone()
        tail = conn.execute(
            "SELECT score FROM jobs WHERE queue = ? AND state = 'queued' ORDER BY score DESC"
            " LIMIT 1", (queue,)).fetchone()
        if tail is not None and isinstance(tail[0], int):
            band = (tail[0] // PRIORITY_SHIFT) * PRIORITY_SHIFT
            first = conn.execute(
                "SELECT run_at_ms FROM jobs WHERE queue = ? AND state = 'queued' AND score >= ?"
                " ORDER BY score LIMIT 1", (queue, band)).fetchone()
            dues += [first[0]] if first is not None else []
        due = conn.execute(
            "SELECT min(score) FROM jobs WHERE queue = ? AND state = 'scheduled' AND score <= ?",
            (queue, now)).fetchone()
        dues += [row[0] for row in (head, due) if row is not None]
        valid = [d for d in dues if isinstance(d, int) and not isinstance(d, bool)]
        out[queue] = max(now - min(valid), 0) if valid else 0
    return out


def work_due_ms(conn: sqlite3.Connection, queues: Sequence[str], now: int) -> int | None:
    """When the first work of the unpaused `queues` can start: `now` for a QUEUED job (or a
    limited queue's held job that may start now), else the earliest due SCHEDULED job's time
    (the wait sleeps until it: answering "work" for a job not yet due made the worker fetch
    in a loop until then); None for no work at all."""
    due_ms: int | None = None
    for queue in queues:
        if conn.execute("SELECT 1 FROM paused WHERE name = ?", (queue,)).fetchone():
            continue
        limited = flow.has_work(conn, queue)  # None: the queue has no limits
        if limited:
            return now
        if limited is None and conn.execute(
            "SELECT 1 FROM jobs WHERE queue = ? AND state = 'queued' LIMIT 1", (queue,)
        ).fetchone():
            return now
        (due,) = conn.execute(
            "SELECT min(score) FROM jobs WHERE queue = ? AND state = 'scheduled'", (queue,)
        ).fetchone()
        if due is not None and (due_ms is None or int(due) < due_ms):
            due_ms = int(due)
    return due_ms


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection (any process, or this broker's writer) commits."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


class _AuditRow(NamedTuple):
    """The fields of a job the audit compares, as stored (unchecked)."""

    id: int
    uid: str
    state: Any
    score: Any
    priority: Any
    seq: Any
    run_at_ms: Any
    deadline_ms: Any
    finished_ms: Any
    token: Any


def _audit_row(_cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> _AuditRow:
    return _AuditRow._make(row)


def _expected_score(row: _AuditRow) -> Any:
    """The score the row's state gives it; None when its fields cannot give one (a row that
    does not parse: it cannot match)."""
    if row.state == JobState.QUEUED:
        if not (isinstance(row.priority, int) and isinstance(row.seq, int)):
            return None
        return queued_score(row.priority, row.seq)
    if row.state == JobState.SCHEDULED:
        return row.run_at_ms
    if row.state == JobState.RUNNING:
        return row.deadline_ms
    return row.finished_ms


def audit(conn: sqlite3.Connection, queue: str) -> AuditReport:
    """Invariant 1 for SQLite. One row per job with one `state` makes "one place" structural,
    so the audit checks what could still drift: each row's state is a real state, its sort
    score and lease token agree with that state (mismatched), and the (queue, state, score)
    index lists exactly the table's rows (index entries without a row: dangling; rows
    missing from the index: orphans; rows indexed twice: duplicates)."""
    report = AuditReport(queue=queue)
    cur = conn.execute(
        f"SELECT {', '.join(_AuditRow._fields)} FROM jobs NOT INDEXED WHERE queue = ?",
        (queue,),
    )
    cur.row_factory = _audit_row
    rows: list[_AuditRow] = cur.fetchall()
    report.jobs_seen = len(rows)
    by_id = {row.id: row for row in rows}
    indexed: dict[int, list[str]] = defaultdict(list)
    for rid, state in conn.execute(
        "SELECT id, state FROM jobs INDEXED BY jobs_by_state WHERE queue = ?", (queue,)
    ):
        indexed[rid].append(state)
    for rid, row in by_id.items():
        job_id = f"{queue}:{row.uid}"
        state, token = row.state, row.token
        if state not in _STATES or rid not in indexed:
            report.orphans.append(job_id)
        elif len(indexed[rid]) > 1:
            report.duplicates.append(job_id)
        elif indexed[rid] != [state] or row.score != _expected_score(row) or (
            # a running job holds a token; a succeeded one keeps the token that acked it
            (state == JobState.RUNNING and not token)
            or (state not in (JobState.RUNNING, JobState.SUCCEEDED) and token)
        ) or (state in TERMINAL_STATES) != (row.finished_ms is not None):
            report.mismatched.append(job_id)
    report.dangling = [f"{queue}:#{rid}" for rid in indexed if rid not in by_id]
    flow.audit(conn, queue, report)
    return report
