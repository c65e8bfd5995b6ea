"""The SQLite broker's event log (issue 17): the `events` table, one row per transition,
inserted by `emit` inside the transition's own transaction, and bounded per queue by
`event_logs.kept` (trimmed oldest first once it passes CONVEYOR_EVENTS_MAXLEN by 1%).
Cursors are row ids (`0` is the start); `event_logs.cut` is the largest id trimmed, so a
reader can tell that events after its cursor are gone (a gap).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from conveyor.brokers.base import LOG_START, EventPage, bad_cursor
from conveyor.brokers.sqlite.connection import EventsConnection, now_ms
from conveyor.events.model import EventName, JobEvent
from conveyor.events.records import event_from_record
from conveyor.jobs import JobState

DEFAULT_EVENTS_MAXLEN = EventsConnection.events_maxlen
_ID_RE = re.compile(r"^\d{1,19}$")


def row_id(cursor: str) -> int:
    if not _ID_RE.fullmatch(cursor):
        raise bad_cursor(cursor)
    return int(cursor)


def arrival(state: JobState) -> EventName:
    """The event of a job just stored in `state` (enqueue, a schedule's fire)."""
    return EventName.SCHEDULED if state == JobState.SCHEDULED else EventName.ENQUEUED


_INSERT = (
    "INSERT INTO events (queue, uid, type, event, state, attempt, at_ms, code, progress)"
    " SELECT queue, uid, type, ?, state, CASE WHEN typeof(attempts) = 'integer'"
    " THEN attempts ELSE 0 END, ?, ?, ? FROM jobs WHERE id = ?"
)


def _maxlen(conn: sqlite3.Connection) -> int:
    return conn.events_maxlen if isinstance(conn, EventsConnection) else DEFAULT_EVENTS_MAXLEN


def emit(conn: sqlite3.Connection, rid: int, event: EventName, code: str | None = None,
         progress: str | None = None) -> None:
    """Append the event of the job row `rid` as the transition left it (its type, state,
    attempts): call after the transition's writes, in its transaction."""
    maxlen = _maxlen(conn)
    if maxlen <= 0:
        return
    row = conn.execute(_INSERT + " RETURNING queue",
                       (event, now_ms(), code or None, progress, rid)).fetchone()
    if row is not None:
        _count(conn, row[0], 1, maxlen)


def emit_many(conn: sqlite3.Connection, queue: str, rids: Sequence[int], event: EventName) -> None:
    """`emit` for job rows of one queue that take the same step in one transition (a batch's
    fetch, ack, promote or enqueue): two statements for the batch, not two per job."""
    maxlen = _maxlen(conn)
    if maxlen <= 0 or not rids:
        return
    at = now_ms()
    added = conn.executemany(_INSERT, [(event, at, None, None, rid) for rid in rids]).rowcount
    if added > 0:
        _count(conn, queue, added, maxlen)


def _count(conn: sqlite3.Connection, queue: str, added: int, maxlen: int) -> None:
    """`added` more events in the queue's log; trim it once it passes its bound by 1%."""
    (kept,) = conn.execute(
        "INSERT INTO event_logs (queue, kept) VALUES (?, ?) ON CONFLICT (queue)"
        " DO UPDATE SET kept = kept + excluded.kept RETURNING kept", (queue, added),
    ).fetchone()
    if kept > maxlen + maxlen // 100:
        _trim(conn, queue, kept - maxlen)


def _trim(conn: sqlite3.Connection, queue: str, n: int) -> None:
    (last,) = conn.execute(
        "SELECT max(id) FROM (SELECT id FROM events WHERE queue = ? ORDER BY id LIMIT ?)",
        (queue, n),
    ).fetchone()
    if last is None:
        return
    gone = conn.execute("DELETE FROM events WHERE queue = ? AND id <= ?", (queue, last)).rowcount
    conn.execute("UPDATE event_logs SET kept = max(kept - ?, 0), cut = max(cut, ?)"
                 " WHERE queue = ?", (gone, last, queue))


def _decode(queue: str, rows: list[Any]) -> list[JobEvent]:
    out = []
    for rid, uid, jtype, name, state, attempt, at, code, progress in rows:
        ev = event_from_record(queue, str(rid), uid, jtype, name, state, attempt, at, code,
                               progress)
        if ev is not None:
            out.append(ev)
    return out


def read(conn: sqlite3.Connection, queue: str, after: str, limit: int) -> EventPage:
    """One read transaction: the rows after the cursor and the trim mark, consistently."""
    start = row_id(after)
    (last,) = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone() \
        or (0,)
    cut_row = conn.execute("SELECT cut FROM event_logs WHERE queue = ?", (queue,)).fetchone()
    cut = int(cut_row[0]) if cut_row else 0
    ahead = start > int(last or 0)  # a cursor this file never reached (another file, lost)
    begin = 0 if ahead else start
    rows = conn.execute(
        "SELECT id, uid, type, event, state, attempt, at_ms, code, progress FROM events"
        " WHERE queue = ? AND id > ? ORDER BY id LIMIT ?", (queue, begin, limit),
    ).fetchall()
    cursor = str(rows[-1][0]) if rows else (LOG_START if ahead else after)
    return EventPage(queue=queue, events=_decode(queue, rows), cursor=cursor,
                     gap=ahead or cut > start)


def tail(conn: sqlite3.Connection, queue: str) -> str:
    (last,) = conn.execute("SELECT max(id) FROM events WHERE queue = ?", (queue,)).fetchone()
    return LOG_START if last is None else str(last)


def has_after(conn: sqlite3.Connection, queue: str, after: int) -> bool:
    return conn.execute("SELECT 1 FROM events WHERE queue = ? AND id > ? LIMIT 1",
                        (queue, after)).fetchone() is not None
