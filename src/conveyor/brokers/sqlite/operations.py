"""The producer's and operator's arrows, each run inside one `BEGIN IMMEDIATE` transaction:
enqueue, cancel, manual retry and retention (the SQL twins of enqueue.lua, cancel.lua,
retry.lua and expire.lua). The DLQ's calls are in dlq.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from conveyor.brokers.base import SERIES_ROLLUP_HOURS
from conveyor.brokers.records import CANCEL_CHECKS, REQUEUE_CHECKS, STATES, record_problem
from conveyor.brokers.sqlite.connection import now_ms
from conveyor.brokers.sqlite.events import arrival, emit, emit_many
from conveyor.brokers.sqlite.records import (
    JOB_COLUMNS,
    CoreRow,
    core_of,
    history_line,
    queued_score,
    select_core,
)
from conveyor.brokers.sqlite.series import expire_series, rollup_series
from conveyor.brokers.sqlite.transitions import set_corrupt, take_seqs
from conveyor.errors import ErrorCode
from conveyor.events.model import EventName
from conveyor.jobs import (
    CANCELLABLE_STATES,
    RETRYABLE_STATES,
    EnqueueResult,
    JobSpec,
    JobState,
    Outcome,
)

_INSERT = (
    "INSERT INTO jobs (queue, uid, type, payload, state, score, priority, seq, max_attempts,"
    " timeout_ms, created_ms, run_at_ms, idem, fp, trace, limit_key) VALUES (?, ?, ?, ?, ?, ?,"
    " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def enqueue(
    conn: sqlite3.Connection, queue: str, specs: Sequence[tuple[str, JobSpec]]
) -> list[EnqueueResult]:
    """Store new jobs as QUEUED (due now) or SCHEDULED (due later). Items are (uid, spec).
    A key held by a job that still exists (any state) returns that job and creates nothing;
    a key repeated within the batch sees the job its first use created."""
    now = now_ms()
    seq = take_seqs(conn, queue, len(specs)) - 1
    out: list[EnqueueResult] = []
    # event -> job rows
    stored: dict[EventName, list[int]] = {EventName.ENQUEUED: [], EventName.SCHEDULED: []}
    for uid, s in specs:
        key = s.idempotency_key
        if key:
            row = conn.execute(
                "SELECT uid, fp, state, created_ms, run_at_ms FROM jobs"
                " WHERE queue = ? AND idem = ?",
                (queue, key),
            ).fetchone()
            if row is not None:
                held, fp, state, created, run_at = row
                out.append(EnqueueResult(
                    f"{queue}:{held}", False, fp, JobState(state), int(created), int(run_at)
                ))
                continue
        if s.delay_ms is not None:
            due = now + s.delay_ms
        elif s.run_at_ms is not None:
            due = s.run_at_ms
        else:
            due = now
        seq += 1
        state = JobState.SCHEDULED if due > now else JobState.QUEUED
        score = due if state == JobState.SCHEDULED else queued_score(s.priority, seq)
        timeout = s.timeout_ms
        cur = conn.execute(_INSERT, (
            queue, uid, s.type, s.payload_json, str(state), score, s.priority, seq, s.max_attempts,
            timeout, now, due, key or None, s.fingerprint, s.trace or None, s.limit_key,
        ))
        assert cur.lastrowid is not None
        stored[arrival(state)].append(cur.lastrowid)
        out.append(EnqueueResult(s.id, True, s.fingerprint, state, now, due))
    for event, rids in stored.items():
        emit_many(conn, queue, rids, event)
    return out


def select_job(conn: sqlite3.Connection, queue: str, uid: str) -> Any:
    return conn.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE queue = ? AND uid = ?", (queue, uid)
    ).fetchone()


def _core(conn: sqlite3.Connection, queue: str, uid: str) -> CoreRow | None:
    rows = select_core(conn, "queue = ? AND uid = ?", (queue, uid))
    return rows[0] if rows else None


def cancel(conn: sqlite3.Connection, queue: str, uid: str, actor: str) -> tuple[str, Any]:
    """SCHEDULED / QUEUED -> CANCELLED; on a RUNNING job, a cancel request for its current
    delivery (cancel.lua). Returns ('ok', row), ('requested', row), ('not_found', None), (the
    state that forbids it, None) or ('corrupt:<what is wrong>', None) for a row that does not
    parse (set aside as DEAD corrupt_job)."""
    row = _core(conn, queue, uid)
    if row is None:
        return "not_found", None
    rid, state, attempts = row.id, row.state, row.attempts
    now = now_ms()
    if state == JobState.RUNNING:  # writes only the two request fields
        cur = conn.execute(
            "UPDATE jobs SET cancel_token = token, cancel_by = ? WHERE id = ? AND token != ''",
            (actor, rid),
        )
        if cur.rowcount == 0:
            return "corrupt:field token is missing", None
        return "requested", select_job(conn, queue, uid)
    if state in STATES and state not in CANCELLABLE_STATES:  # RUNNING: asked above
        return str(state), None
    problem = record_problem(core_of(row), None, CANCEL_CHECKS)
    if problem is not None:
        set_corrupt(conn, rid, now, problem)
        return f"corrupt:{problem}", None
    msg = f"cancelled by {actor}"
    conn.execute(
        "UPDATE jobs SET state = 'cancelled', score = ?, finished_ms = ?, err_code = ?,"
        " err_msg = ?, history = history || ? WHERE id = ?",
        (now, now, ErrorCode.CANCELLED, msg,
         history_line(attempts, actor, None, now, Outcome.CANCELLED, ErrorCode.CANCELLED, msg),
         rid),
    )
    emit(conn, rid, EventName.CANCELLED, ErrorCode.CANCELLED)
    return "ok", select_job(conn, queue, uid)


def retry(
    conn: sqlite3.Connection, queue: str, uids: Sequence[str], actor: str
) -> list[tuple[str, str]]:
    """DEAD / CANCELLED -> QUEUED with attempts back at 0 (manual retry). Returns (uid,
    'retried' | 'not_found' | the state that forbade it) per job."""
    now = now_ms()
    targets = list(uids)
    out = []
    for uid in targets:
        row = _core(conn, queue, uid)
        if row is None:
            out.append((uid, "not_found"))
            continue
        rid, state, prio = row.id, row.state, row.priority
        if state in STATES and state not in RETRYABLE_STATES:
            out.append((uid, str(state)))
            continue
        problem = record_problem(core_of(row), None, REQUEUE_CHECKS)
        if problem is not None:  # a cancelled one is set aside; a dead one stays as it is
            if state == JobState.CANCELLED:
                set_corrupt(conn, rid, now, problem)
            out.append((uid, f"corrupt:{problem}"))
            continue
        seq = take_seqs(conn, queue, 1)
        line = history_line(0, actor, None, now, Outcome.RETRIED, None,
                            f"moved from {state} to queued")
        # leaving DEAD counts as a redrive (as in retry.lua)
        conn.execute(
            "UPDATE jobs SET state = 'queued', attempts = 0, seq = ?, score = ?, run_at_ms = ?,"
            " finished_ms = NULL, token = '', history = history || ?,"
            " redrives = redrives + (state = 'dead') WHERE id = ?",
            (seq, queued_score(prio, seq), now, line, rid),
        )
        emit(conn, rid, EventName.REDRIVEN)
        out.append((uid, "retried"))
    return out


def expire(
    conn: sqlite3.Connection, queue: str, retention_ms: int, dlq_retention_ms: int, limit: int
) -> int:
    """Retention: delete SUCCEEDED / CANCELLED jobs finished at or before now - retention and
    DEAD ones past the DLQ retention, at most `limit` per state. The idempotency key lives
    on the row, so it goes with it; pending death events go too, and events older than the
    DLQ retention (their job already gone) are dropped."""
    now = now_ms()
    deleted = 0
    for state, keep_ms in (
        (JobState.SUCCEEDED, retention_ms),
        (JobState.CANCELLED, retention_ms),
        (JobState.DEAD, dlq_retention_ms),
    ):
        rows = conn.execute(
            "SELECT id, uid FROM jobs WHERE queue = ? AND state = ? AND score <= ?"
            " ORDER BY score LIMIT ?",
            (queue, str(state), now - keep_ms, limit),
        ).fetchall()
        conn.executemany(
            "DELETE FROM deaths WHERE queue = ? AND uid = ?", [(queue, uid) for _, uid in rows]
        )
        conn.executemany("DELETE FROM jobs WHERE id = ?", [(rid,) for rid, _ in rows])
        deleted += len(rows)
    conn.execute(
        "DELETE FROM deaths WHERE rowid IN (SELECT rowid FROM deaths WHERE queue = ?"
        " AND due_ms <= ? ORDER BY due_ms LIMIT ?)",
        (queue, now - dlq_retention_ms, limit),
    )
    expire_series(conn, queue, now, limit)
    rollup_series(conn, queue, now, SERIES_ROLLUP_HOURS)
    return deleted


def forget_queue(conn: sqlite3.Connection, queue: str) -> tuple[str, dict[str, int]]:
    """Drop an empty queue from the registry with its paused flag, stray death events, event
    log, followers' cursors and limits, in the writer's one transaction (an enqueue registers its
    queue in its own). Returns ('ok', {}), ('not_found', {}) or ('not_empty', jobs left per
    state)."""
    counts = {str(state): int(n) for state, n in conn.execute(
        "SELECT state, count(*) FROM jobs WHERE queue = ? GROUP BY state", (queue,))}
    if counts:
        return "not_empty", counts
    known = conn.execute(
        "SELECT 1 FROM queues WHERE name = ? UNION ALL SELECT 1 FROM paused WHERE name = ?",
        (queue, queue),
    ).fetchone()
    if known is None:
        return "not_found", {}
    for sql in ("DELETE FROM queues WHERE name = ?", "DELETE FROM paused WHERE name = ?",
                "DELETE FROM deaths WHERE queue = ?", "DELETE FROM events WHERE queue = ?",
                "DELETE FROM event_logs WHERE queue = ?",
                "DELETE FROM event_cursors WHERE queue = ?",
                "DELETE FROM queue_limits WHERE queue = ?",
                "DELETE FROM limit_keys WHERE queue = ?"):
        conn.execute(sql, (queue,))
    return "ok", {}
