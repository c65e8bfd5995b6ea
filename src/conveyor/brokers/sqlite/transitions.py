"""The worker's arrows of the state machine, each a function run inside one `BEGIN IMMEDIATE`
transaction (see `Database.write`): the SQL twins of fetch.lua, ack.lua, fail.lua, ...

Every function reads the clock once, after the write lock is held, and judges each item of a
batch on its own. A lease call matches `state = 'running' AND token = ?`: the fence of
invariant 3, so a stale worker's late call changes nothing. Each checks the fields it reads
(`record_problem`, the rules of the Lua scripts) before it writes: a row that does not parse
is set aside as DEAD `corrupt_job` (`set_corrupt`) and the rest of the batch goes on.
Lease calls take the protocol's own items (`LeaseRef`, `AckItem`, `FailItem`), every job id
split and checked before the first write; rows are read as `records.CoreRow`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

from conveyor.brokers.base import AckItem, FailItem, LeaseRef
from conveyor.brokers.records import (
    ACK_CHECKS,
    CANCEL_CHECKS,
    FAIL_CHECKS,
    FETCH_CHECKS,
    PROMOTE_CHECKS,
    REAP_CHECKS,
    RELEASE_CHECKS,
    record_problem,
)
from conveyor.brokers.sqlite import flow
from conveyor.brokers.sqlite.connection import now_ms
from conveyor.brokers.sqlite.events import emit, emit_many
from conveyor.brokers.sqlite.records import (
    CoreRow,
    core_of,
    history_line,
    queued_score,
    select_core,
)
from conveyor.brokers.sqlite.series import count_series
from conveyor.errors import ErrorCode
from conveyor.events.model import EventName
from conveyor.events.records import progress_json
from conveyor.ids import split_job_id
from conveyor.jobs import RESULT_PREVIEW_CHARS, JobState, Outcome

LEASE_EXPIRED_MSG = "lease expired: the worker died, hung or lost its connection"
RELEASED_MSG = "released by a stopping worker; attempt not charged"

def _leases(refs: Sequence[LeaseRef | AckItem | FailItem]) -> list[tuple[str, str, str]]:
    """(queue, uid, token) of each item, every id checked before the first write."""
    return [(*split_job_id(r.job_id), r.token) for r in refs]


class Leased(NamedTuple):
    """One job `fetch` leased: what the broker builds its `Delivery` of."""

    uid: str
    token: str
    type: str
    payload: str
    attempts: int
    max_attempts: int
    timeout_ms: int | None
    run_at_ms: Any
    trace: str

    @classmethod
    def of(cls, row: CoreRow, token: str) -> Leased:
        """A QUEUED row FETCH_CHECKS passed, leased under `token` (its attempt charged)."""
        return cls(row.uid, token, row.type, row.payload, _attempts(row) + 1,
                   int(row.max_attempts), _timeout_ms(row), row.run_at, _trace(row))


def record_death(conn: sqlite3.Connection, rid: int, now: int) -> None:
    """The death event of a job moving to DEAD, in the same transaction (at-least-once
    on_dead hooks); one per death: the redrive count tells a job's deaths apart (0 when the
    row's count is unusable, as in _lib.lua)."""
    conn.execute(
        "INSERT OR REPLACE INTO deaths (queue, uid, n, due_ms)"
        " SELECT queue, uid, CASE WHEN typeof(redrives) = 'integer' AND redrives >= 0"
        " THEN redrives ELSE 0 END, ? FROM jobs WHERE id = ?",
        (now, rid),
    )


def set_corrupt(conn: sqlite3.Connection, rid: int, now: int, problem: str) -> None:
    """Set a row that does not parse aside: DEAD with `corrupt_job`, its message and a
    history line naming what is wrong, its death recorded (set_corrupt in _lib.lua)."""
    msg = f"corrupt record: {problem}"
    flow.give_back(conn, rid, now)
    conn.execute(
        "UPDATE jobs SET state = 'dead', score = ?, finished_ms = ?, token = '',"
        " err_code = ?, err_msg = ?, history = history || ? WHERE id = ?",
        (now, now, ErrorCode.CORRUPT_JOB, msg,
         history_line(0, None, None, now, Outcome.DEAD, ErrorCode.CORRUPT_JOB, msg), rid),
    )
    record_death(conn, rid, now)
    emit(conn, rid, EventName.DEAD, ErrorCode.CORRUPT_JOB)


def checked(
    conn: sqlite3.Connection, rows: Sequence[CoreRow], want: str | None,
    checks: Sequence[str], now: int,
) -> list[CoreRow]:
    """The rows whose state is `want` and whose `checks` fields are usable, in order; the
    others are set aside."""
    good = []
    for row in rows:
        problem = record_problem(core_of(row), want, checks)
        if problem is None:
            good.append(row)
        else:
            set_corrupt(conn, row.id, now, problem)
    return good


def _timeout_ms(row: CoreRow) -> int | None:
    return None if row.timeout in (None, "") else int(row.timeout)


def _trace(row: CoreRow) -> str:
    return row.trace if isinstance(row.trace, str) else ""


def take_seqs(conn: sqlite3.Connection, queue: str, n: int) -> int:
    """Reserve `n` consecutive seq numbers of `queue`; return the first."""
    conn.execute("INSERT INTO queues (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (queue,))
    conn.execute("UPDATE queues SET seq = seq + ? WHERE name = ?", (n, queue))
    (last,) = conn.execute("SELECT seq FROM queues WHERE name = ?", (queue,)).fetchone()
    return int(last) - n + 1


def next_due(conn: sqlite3.Connection, queue: str) -> int | None:
    row = conn.execute(
        "SELECT min(score) FROM jobs WHERE queue = ? AND state = 'scheduled'", (queue,)
    ).fetchone()
    return None if row[0] is None else int(row[0])


def promote(conn: sqlite3.Connection, queue: str, now: int, limit: int) -> int:
    """SCHEDULED -> QUEUED for due jobs, oldest due first, at most `limit`."""
    due = checked(conn, select_core(
        conn, "queue = ? AND state = 'scheduled' AND score <= ? ORDER BY score LIMIT ?",
        (queue, now, limit),
    ), JobState.SCHEDULED, PROMOTE_CHECKS, now)
    if due:
        first = take_seqs(conn, queue, len(due))
        conn.executemany(
            "UPDATE jobs SET state = 'queued', seq = ?, score = ? WHERE id = ?",
            [(first + i, queued_score(row.priority, first + i), row.id)
             for i, row in enumerate(due)],
        )
        emit_many(conn, queue, [row.id for row in due], EventName.ENQUEUED)
    return len(due)


def fetch(
    conn: sqlite3.Connection, queue: str, count: int, worker: str, lease_ms: int,
    promote_limit: int, nonce: str,
) -> tuple[int, int | None, int, list[Leased]]:
    """Promote due jobs, then lease up to `count` QUEUED jobs (attempts + 1, a new token:
    `<nonce>.<i>`, random bits per call, so a file that lost its last commits never hands
    out a token again; see `ids.lease_nonce`).

    Returns (now, next_due, promoted, the leases handed out). A paused queue hands out
    nothing and promotes nothing.
    """
    now = now_ms()
    if conn.execute("SELECT 1 FROM paused WHERE name = ?", (queue,)).fetchone():
        return now, next_due(conn, queue), 0, []
    promoted = promote(conn, queue, now, promote_limit)
    out: list[Leased] = []
    limits = flow.limits_row(conn, queue)
    if limits is not None:  # flow control: lease through the queue's limits
        deadline = now + lease_ms

        def lease(key: str) -> bool:
            rows = checked(conn, select_core(
                conn, "queue = ? AND state = 'queued' AND limit_key IS ? ORDER BY score LIMIT 1",
                (queue, key or None),
            ), JobState.QUEUED, FETCH_CHECKS, now)
            if not rows:
                return False
            leased = Leased.of(rows[0], f"{nonce}.{len(out) + 1}")
            conn.execute(
                "UPDATE jobs SET state = 'running', score = ?, deadline_ms = ?, lease = lease + 1,"
                " token = ?, attempts = ?, started_ms = ?, worker = ?, permit = 1 WHERE id = ?",
                (deadline, deadline, leased.token, leased.attempts, now, worker, rows[0].id),
            )
            out.append(leased)
            emit(conn, rows[0].id, EventName.STARTED)
            return True

        wake = flow.fetch(conn, queue, limits, count, now, lease, next_due(conn, queue))
        return now, wake, promoted, out
    if count > 0:
        rows = checked(conn, select_core(
            conn, "queue = ? AND state = 'queued' ORDER BY score LIMIT ?", (queue, count),
        ), JobState.QUEUED, FETCH_CHECKS, now)
        deadline = now + lease_ms
        updates = []
        for i, row in enumerate(rows, 1):
            leased = Leased.of(row, f"{nonce}.{i}")
            updates.append((deadline, deadline, leased.token, leased.attempts, now, worker,
                            row.id))
            out.append(leased)
        conn.executemany(
            "UPDATE jobs SET state = 'running', score = ?, deadline_ms = ?, lease = lease + 1,"
            " token = ?, attempts = ?, started_ms = ?, worker = ? WHERE id = ?",
            updates,
        )
        emit_many(conn, queue, [u[-1] for u in updates], EventName.STARTED)
    return now, next_due(conn, queue), promoted, out


def heartbeat(
    conn: sqlite3.Connection, leases: Sequence[LeaseRef], lease_ms: int
) -> tuple[list[int], dict[int, str]]:
    """Extend the leases held with the current token; return the positions of lost ones, and
    position -> actor for held ones whose delivery was asked to stop (`ops.cancel`)."""
    deadline = now_ms() + lease_ms
    lost = []
    cancels: dict[int, str] = {}
    for pos, (queue, uid, token) in enumerate(_leases(leases)):
        row = conn.execute(
            "UPDATE jobs SET deadline_ms = ?, score = ? WHERE queue = ? AND uid = ?"
            " AND state = 'running' AND token = ? RETURNING cancel_token, cancel_by",
            (deadline, deadline, queue, uid, token),
        ).fetchone()
        if row is None:
            lost.append(pos)
        elif row[0] == token:
            cancels[pos] = str(row[1] or "")
    return lost, cancels


def cancel_running(conn: sqlite3.Connection, leases: Sequence[LeaseRef]) -> list[bool]:
    """RUNNING -> CANCELLED by the lease holder, for a delivery asked to stop (the twin of
    cancel_running.lua): a stale token, or no request for this delivery, changes nothing."""
    now = now_ms()
    out = []
    for queue, uid, token in _leases(leases):
        asked = conn.execute(
            "SELECT cancel_by FROM jobs WHERE queue = ? AND uid = ? AND state = 'running'"
            " AND token = ? AND cancel_token = token", (queue, uid, token),
        ).fetchone()
        row = None if asked is None else _holder(conn, queue, uid, token, now, CANCEL_CHECKS)
        if row is None:
            out.append(False)
            continue
        rid, attempts, worker, started = row.id, _attempts(row), row.worker, row.started
        flow.give_back(conn, rid, now)
        msg = f"cancelled by {asked[0] or '?'} while running"
        conn.execute(
            "UPDATE jobs SET state = 'cancelled', score = ?, finished_ms = ?, token = '',"
            " err_code = ?, err_msg = ?, history = history || ? WHERE id = ?",
            (now, now, ErrorCode.CANCELLED, msg,
             history_line(attempts, worker, started, now, Outcome.CANCELLED,
                          ErrorCode.CANCELLED, msg), rid),
        )
        emit(conn, rid, EventName.CANCELLED, ErrorCode.CANCELLED)
        out.append(True)
    return out


def _holder(
    conn: sqlite3.Connection, queue: str, uid: str, token: str, now: int, checks: Sequence[str]
) -> CoreRow | None:
    """The job running under this token, or None: not held, or a row that does not parse
    (set aside)."""
    rows = select_core(conn, "queue = ? AND uid = ? AND state = 'running' AND token = ?",
                       (queue, uid, token))
    good = checked(conn, rows, JobState.RUNNING, checks, now)
    return good[0] if good else None


def _attempts(row: CoreRow) -> int:
    """The attempts of a row `checked` passed (blank reads as 0, as in the scripts)."""
    return int(row.attempts or 0)


def ack(conn: sqlite3.Connection, items: Sequence[AckItem]) -> list[bool]:
    """RUNNING -> SUCCEEDED (results already made safe to store). An ack sent again by the
    same lease (its first reply lost) is accepted and changes nothing: the token stays."""
    now = now_ms()
    out = []
    acked: dict[str, list[int]] = {}  # queue -> job rows, for their events
    for (queue, uid, token), item in zip(_leases(items), items, strict=True):
        result = item.result_json
        row = _holder(conn, queue, uid, token, now, ACK_CHECKS)
        if row is None:
            again = conn.execute(
                "SELECT 1 FROM jobs WHERE queue = ? AND uid = ? AND state = 'succeeded'"
                " AND token = ? AND token != ''", (queue, uid, token),
            ).fetchone()
            out.append(again is not None)
            continue
        rid, attempts, worker, started = row.id, _attempts(row), row.worker, row.started
        flow.give_back(conn, rid, now)
        conn.execute(
            "UPDATE jobs SET state = 'succeeded', score = ?, finished_ms = ?, result = ?,"
            " result_preview = ?, result_size = ?, history = history || ? WHERE id = ?",
            (now, now, result, result[:RESULT_PREVIEW_CHARS], len(result),
             history_line(attempts, worker, started, now, Outcome.SUCCEEDED), rid),
        )
        acked.setdefault(queue, []).append(rid)
        count_series(conn, rid, now, "s")
        out.append(True)
    for queue, rids in acked.items():
        emit_many(conn, queue, rids, EventName.SUCCEEDED)
    return out


def fail(conn: sqlite3.Connection, items: Sequence[FailItem]) -> list[JobState | None]:
    """RUNNING -> QUEUED / SCHEDULED (retry) or DEAD; None where the lease was lost (texts
    already made safe to store). No retry once attempts reach max_attempts (invariant 5). A
    delivery asked to stop (`ops.cancel`) ends CANCELLED instead (fail.lua)."""
    now = now_ms()
    out: list[JobState | None] = []
    for (queue, uid, token), item in zip(_leases(items), items, strict=True):
        delay = None if item.retry_delay_ms is None else max(int(item.retry_delay_ms), 0)
        code, msg, tb = item.error_code, item.message, item.traceback
        row = _holder(conn, queue, uid, token, now, FAIL_CHECKS)
        if row is None:
            out.append(None)
            continue
        rid, attempts, worker, started = row.id, _attempts(row), row.worker, row.started
        max_att, prio = int(row.max_attempts), row.priority
        flow.give_back(conn, rid, now)
        set_error = "err_code = ?, err_msg = ?, token = '', history = history || ?"
        asked = conn.execute(  # asked to stop (ops.cancel): the cancel wins over a retry
            "SELECT cancel_by FROM jobs WHERE id = ? AND cancel_token = token", (rid,),
        ).fetchone()
        if asked is not None:
            why = f"cancelled by {asked[0] or '?'} while running (its attempt failed: {code})"
            line = history_line(attempts, worker, started, now, Outcome.CANCELLED,
                                ErrorCode.CANCELLED, why, tb)
            conn.execute(
                f"UPDATE jobs SET state = 'cancelled', score = ?, finished_ms = ?, {set_error}"
                " WHERE id = ?",
                (now, now, ErrorCode.CANCELLED, why, line, rid),
            )
            emit(conn, rid, EventName.CANCELLED, ErrorCode.CANCELLED)
            out.append(JobState.CANCELLED)
        elif delay is not None and attempts < max_att:
            line = history_line(attempts, worker, started, now, Outcome.FAILED, code, msg, tb)
            if delay == 0:
                seq = take_seqs(conn, queue, 1)
                conn.execute(
                    f"UPDATE jobs SET state = 'queued', seq = ?, score = ?, run_at_ms = ?,"
                    f" {set_error} WHERE id = ?",
                    (seq, queued_score(prio, seq), now, code, msg, line, rid),
                )
                emit(conn, rid, EventName.RETRYING, code)
                count_series(conn, rid, now, "f")
                out.append(JobState.QUEUED)
            else:
                due = now + delay
                conn.execute(
                    f"UPDATE jobs SET state = 'scheduled', score = ?, run_at_ms = ?,"
                    f" {set_error} WHERE id = ?",
                    (due, due, code, msg, line, rid),
                )
                emit(conn, rid, EventName.RETRYING, code)
                count_series(conn, rid, now, "f")
                out.append(JobState.SCHEDULED)
        else:
            line = history_line(attempts, worker, started, now, Outcome.DEAD, code, msg, tb)
            conn.execute(
                f"UPDATE jobs SET state = 'dead', score = ?, finished_ms = ?, {set_error}"
                " WHERE id = ?",
                (now, now, code, msg, line, rid),
            )
            record_death(conn, rid, now)
            emit(conn, rid, EventName.DEAD, code)
            count_series(conn, rid, now, "d")
            out.append(JobState.DEAD)
    return out


def release(
    conn: sqlite3.Connection, leases: Sequence[LeaseRef], hold_ms: int | None = None
) -> list[bool]:
    """RUNNING -> QUEUED, attempt refunded. The job keeps its seq: back to its old place.
    `hold_ms`: the handler raised RateLimited; hold the job's key (or queue) that long."""
    now = now_ms()
    out = []
    for queue, uid, token in _leases(leases):
        row = _holder(conn, queue, uid, token, now, RELEASE_CHECKS)
        if row is None:
            out.append(False)
            continue
        rid, attempts, worker, started = row.id, _attempts(row), row.worker, row.started
        flow.give_back(conn, rid, now)
        if hold_ms is None:
            line = history_line(attempts, worker, started, now, Outcome.RELEASED,
                                ErrorCode.WORKER_SHUTDOWN, RELEASED_MSG)
        else:
            flow.hold(conn, rid, now, hold_ms)
            line = history_line(attempts, worker, started, now, Outcome.RELEASED,
                                ErrorCode.RATE_LIMITED, f"rate limited upstream: key held for"
                                f" {hold_ms} ms; attempt not charged")
        conn.execute(
            "UPDATE jobs SET state = 'queued', score = ?, attempts = attempts - 1, token = '',"
            " history = history || ? WHERE id = ?",
            (queued_score(row.priority, row.seq), line, rid),
        )
        emit(conn, rid, EventName.RELEASED)
        out.append(True)
    return out


def reap(conn: sqlite3.Connection, queue: str, limit: int) -> tuple[int, int, int]:
    """The visibility timeout: expired leases go back to QUEUED (old place), or to DEAD
    with `lease_expired` when that was the last allowed attempt (a poison job: it stays
    DEAD until an operator, or a policy that opted in, redrives it). Returns (requeued,
    dead, cancelled). A job asked to stop (`ops.cancel` of a RUNNING job) ends CANCELLED."""
    now = now_ms()
    rows = checked(conn, select_core(
        conn, "queue = ? AND state = 'running' AND score <= ? ORDER BY score LIMIT ?",
        (queue, now, limit),
    ), JobState.RUNNING, REAP_CHECKS, now)
    requeued = dead = cancelled = 0
    for row in rows:
        rid, attempts, worker, started = row.id, _attempts(row), row.worker, row.started
        flow.give_back(conn, rid, now)
        code = ErrorCode.LEASE_EXPIRED
        if row.cancel_token and row.cancel_token == row.token:  # asked to stop: not requeued
            msg = f"cancelled by {row.cancel_by or '?'} (the worker's lease expired first)"
            conn.execute(
                "UPDATE jobs SET state = 'cancelled', score = ?, finished_ms = ?, token = '',"
                " err_code = ?, err_msg = ?, history = history || ? WHERE id = ?",
                (now, now, ErrorCode.CANCELLED, msg,
                 history_line(attempts, worker, started, now, Outcome.CANCELLED,
                              ErrorCode.CANCELLED, msg),
                 rid),
            )
            emit(conn, rid, EventName.CANCELLED, ErrorCode.CANCELLED)
            cancelled += 1
        elif attempts >= int(row.max_attempts):
            line = history_line(attempts, worker, started, now, Outcome.DEAD, code,
                                LEASE_EXPIRED_MSG)
            conn.execute(
                "UPDATE jobs SET state = 'dead', score = ?, finished_ms = ?, token = '',"
                " err_code = ?, err_msg = ?, history = history || ? WHERE id = ?",
                (now, now, code, LEASE_EXPIRED_MSG, line, rid),
            )
            record_death(conn, rid, now)
            emit(conn, rid, EventName.DEAD, code)
            count_series(conn, rid, now, "d")
            dead += 1
        else:
            line = history_line(attempts, worker, started, now, Outcome.LEASE_EXPIRED, code,
                                LEASE_EXPIRED_MSG)
            conn.execute(
                "UPDATE jobs SET state = 'queued', score = ?, token = '', err_code = ?,"
                " err_msg = ?, history = history || ? WHERE id = ?",
                (queued_score(row.priority, row.seq), code, LEASE_EXPIRED_MSG, line, rid),
            )
            emit(conn, rid, EventName.LEASE_EXPIRED, code)
            count_series(conn, rid, now, "f")
            requeued += 1
    return requeued, dead, cancelled


def progress(
    conn: sqlite3.Connection, items: Sequence[tuple[str, str, str, str, str]],
) -> list[bool]:
    """Store progress reports of the lease holder (progress.lua). Items are (queue, uid,
    token, value as decimal text, message or '')."""
    now = now_ms()
    out = []
    for queue, uid, token, value, message in items:
        row = conn.execute(
            "SELECT id FROM jobs WHERE queue = ? AND uid = ? AND state = 'running' AND token = ?",
            (queue, uid, token),
        ).fetchone()
        if row is None:
            out.append(False)
            continue
        report = progress_json(float(value), message or None, now)
        conn.execute("UPDATE jobs SET progress = ? WHERE id = ?", (report, row[0]))
        emit(conn, row[0], EventName.PROGRESS, None, report)
        out.append(True)
    return out

