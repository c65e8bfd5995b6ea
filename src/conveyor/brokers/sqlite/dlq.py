"""The SQLite broker's DLQ calls, each run in one transaction: the bounded scan (a read),
redrive in place or into another queue, purge, and the death events behind the `on_dead`
hooks. The SQL twins of scan_dead.lua, redrive.lua, adopt.lua + purge.lua, claim_deaths.lua.

A move into another queue is one transaction here (one file), so it cannot be cut in two;
the copy still carries the idempotency key of the Redis broker (old id + redrive count).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from conveyor.brokers.base import DeadSelector
from conveyor.brokers.records import MOVE_CHECKS, REQUEUE_CHECKS, record_problem
from conveyor.brokers.sqlite.connection import now_ms
from conveyor.brokers.sqlite.events import emit
from conveyor.brokers.sqlite.records import (
    CoreRow,
    core_of,
    history_line,
    queued_score,
    select_core,
)
from conveyor.brokers.sqlite.transitions import take_seqs
from conveyor.events.model import EventName
from conveyor.ids import new_uid
from conveyor.jobs import JobState, Outcome

#: (death ms, uid): a position in the dead index, ordered as the Redis zset orders it
Position = tuple[int, str]


def _match(sel: DeadSelector | None) -> tuple[str, list[Any]]:
    """"DEAD and matches the selector" as SQL (dead_match in _lib.lua). A dead job's score
    is its death time."""
    sql, params = ["state = 'dead'"], []
    if sel is not None:
        for clause, value in (
            ("type = ?", sel.type), ("err_code = ?", sel.error_code),
            ("score >= ?", sel.died_after_ms), ("score < ?", sel.died_before_ms),
            ("redrives < ?", sel.max_redrives),
        ):
            if value is not None:
                sql.append(clause)
                params.append(value)
        if sel.skip_error_codes:
            marks = ", ".join("?" * len(sel.skip_error_codes))
            sql.append(f"coalesce(err_code, '') NOT IN ({marks})")
            params += sel.skip_error_codes
    return " AND ".join(sql), params


def _range(sel: DeadSelector | None) -> tuple[str, list[Any]]:
    """The selector's death-time range as SQL, for walking the dead index."""
    sql, params = ["queue = ?", "state = 'dead'"], []
    if sel is not None and sel.died_after_ms is not None:
        sql.append("score >= ?")
        params.append(sel.died_after_ms)
    if sel is not None and sel.died_before_ms is not None:
        sql.append("score < ?")
        params.append(sel.died_before_ms)
    return " AND ".join(sql), params


def scan(
    conn: sqlite3.Connection, queue: str, sel: DeadSelector | None, limit: int,
    cursor: Position | None, scan: int,
) -> tuple[list[str], Position | None, bool]:
    """Up to `limit` matching uids after `cursor`, oldest death first, examining at most
    `scan` rows. Returns (uids, last position examined, range exhausted)."""
    cond, cond_params = _match(sel)
    where, params = _range(sel)
    if cursor is not None:
        where += " AND score >= ? AND (score > ? OR uid > ?)"
        params += [cursor[0], cursor[0], cursor[1]]
    rows = conn.execute(
        f"SELECT uid, score, ({cond}) FROM jobs WHERE {where} ORDER BY score, uid LIMIT ?",
        (*cond_params, queue, *params, scan),
    ).fetchall()
    out: list[str] = []
    last, done = cursor, len(rows) < scan
    for i, (uid, score, ok) in enumerate(rows):
        last = (int(score), uid)
        if ok:
            out.append(uid)
            if len(out) >= limit:
                done = done and i == len(rows) - 1
                break
    return out, last, done


def _targets(
    conn: sqlite3.Connection, queue: str, sel: DeadSelector | None, uids: Sequence[str] | None,
    limit: int,
) -> list[str]:
    """The given uids, or the oldest `limit` dead jobs of the selector's range (pick_dead)."""
    if uids is not None:
        return list(uids)
    where, params = _range(sel)
    rows = conn.execute(
        f"SELECT uid FROM jobs WHERE {where} ORDER BY score, uid LIMIT ?",
        (queue, *params, limit),
    ).fetchall()
    return [r[0] for r in rows]


def _matching(
    conn: sqlite3.Connection, queue: str, uid: str, sel: DeadSelector | None,
    checks: Sequence[str] = (),
) -> CoreRow | None:
    """The dead job if it matches `sel` and its `checks` fields are usable (a row whose are
    not is left dead, never moved, as redrive.lua leaves it); else None."""
    cond, params = _match(sel)
    rows = select_core(conn, f"queue = ? AND uid = ? AND {cond}", (queue, uid, *params))
    if not rows or record_problem(core_of(rows[0]), JobState.DEAD, checks) is not None:
        return None
    return rows[0]


def redrive(
    conn: sqlite3.Connection, queue: str, uids: Sequence[str] | None, limit: int, actor: str,
    sel: DeadSelector | None, dry_run: bool,
) -> list[str]:
    """DEAD -> QUEUED in place: attempts 0, redrive counter + 1, a history line naming the
    actor. Returns the uids moved (dry run: that would move)."""
    now = now_ms()
    out = []
    for uid in _targets(conn, queue, sel, uids, limit):
        row = _matching(conn, queue, uid, sel, REQUEUE_CHECKS)
        if row is None:
            continue
        if not dry_run:
            rid, prio = row.id, row.priority
            seq = take_seqs(conn, queue, 1)
            line = history_line(0, actor, None, now, Outcome.REDRIVEN, None,
                                f"redriven from the DLQ by {actor}")
            conn.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, seq = ?, score = ?,"
                " run_at_ms = ?, finished_ms = NULL, token = '', redrives = redrives + 1,"
                " history = history || ? WHERE id = ?",
                (seq, queued_score(prio, seq), now, line, rid),
            )
            emit(conn, rid, EventName.REDRIVEN)
        out.append(uid)
    return out


def purge(
    conn: sqlite3.Connection, queue: str, uids: Sequence[str] | None, limit: int,
    sel: DeadSelector | None, dry_run: bool,
) -> list[str]:
    """Delete matching dead jobs and their pending death events."""
    out = []
    for uid in _targets(conn, queue, sel, uids, limit):
        row = _matching(conn, queue, uid, sel)  # purge takes any row that is dead
        if row is None:
            continue
        if not dry_run:
            conn.execute("DELETE FROM deaths WHERE queue = ? AND uid = ?", (queue, uid))
            conn.execute("DELETE FROM jobs WHERE id = ?", (row.id,))
        out.append(uid)
    return out


_COPY = (
    "INSERT INTO jobs (queue, uid, type, payload, state, score, priority, seq, max_attempts,"
    " timeout_ms, created_ms, run_at_ms, idem, fp, history, redrives, limit_key)"
    " SELECT ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, limit_key"
    " FROM jobs WHERE id = ?"
)
#: the old job's log lines onto the copy (already within the logs' bounds), oldest first
_COPY_LOGS = (
    "INSERT INTO job_logs (job, line, bytes) SELECT ?, line, bytes FROM job_logs WHERE job = ?"
    " ORDER BY id"
)


def move(
    conn: sqlite3.Connection, queue: str, uids: Sequence[str], target: str, actor: str,
    sel: DeadSelector | None,
) -> list[tuple[str, str]]:
    """Each matching dead job becomes a new QUEUED job of `target` (its history plus a line
    naming the old id, its limit_key and log lines kept; the key
    `redrive:<old id>:<redrive count>` finds a copy already made) and the dead one is
    deleted. Returns (old uid, new uid) pairs."""
    now = now_ms()
    out = []
    for uid in uids:
        row = _matching(conn, queue, uid, sel, MOVE_CHECKS)
        if row is None:
            continue
        rid, prio, count = row.id, row.priority, row.redrives
        old_id = f"{queue}:{uid}"
        key = f"redrive:{old_id}:{count}"
        held = conn.execute(
            "SELECT uid FROM jobs WHERE queue = ? AND idem = ?", (target, key)
        ).fetchone()
        new = held[0] if held is not None else new_uid()
        if held is None:
            seq = take_seqs(conn, target, 1)
            line = history_line(0, actor, None, now, Outcome.REDRIVEN, None,
                                f"redriven from {old_id} by {actor}")
            (history,) = conn.execute("SELECT history FROM jobs WHERE id = ?", (rid,)).fetchone()
            cur = conn.execute(_COPY, (
                target, new, row.type, row.payload, queued_score(prio, seq), prio, seq,
                row.max_attempts, row.timeout, now, now, key, (history or "") + line,
                int(count) + 1, rid,
            ))
            assert cur.lastrowid is not None
            conn.execute(_COPY_LOGS, (cur.lastrowid, rid))
            emit(conn, cur.lastrowid, EventName.REDRIVEN)
        conn.execute("DELETE FROM deaths WHERE queue = ? AND uid = ?", (queue, uid))
        conn.execute("DELETE FROM jobs WHERE id = ?", (rid,))
        out.append((uid, new))
    return out


def claim_deaths(
    conn: sqlite3.Connection, queue: str, limit: int, lease_ms: int
) -> list[tuple[str, int, str]]:
    """Unhandled deaths due now, claimed until now + lease_ms. Returns (uid, n, type), the
    type '' when the job is gone (as claim_deaths.lua)."""
    now = now_ms()
    rows = conn.execute(
        "SELECT d.uid, d.n, coalesce(j.type, '') FROM deaths AS d LEFT JOIN jobs AS j"
        " ON j.queue = d.queue AND j.uid = d.uid"
        " WHERE d.queue = ? AND d.due_ms <= ? ORDER BY d.due_ms LIMIT ?",
        (queue, now, limit),
    ).fetchall()
    conn.executemany(
        "UPDATE deaths SET due_ms = ? WHERE queue = ? AND uid = ? AND n = ?",
        [(now + lease_ms, queue, uid, n) for uid, n, _ in rows],
    )
    return [(uid, int(n), jtype) for uid, n, jtype in rows]


def ack_deaths(conn: sqlite3.Connection, queue: str, events: Sequence[tuple[str, int]]) -> int:
    cur = conn.executemany(
        "DELETE FROM deaths WHERE queue = ? AND uid = ? AND n = ?",
        [(queue, uid, n) for uid, n in events],
    )
    return max(cur.rowcount, 0)
