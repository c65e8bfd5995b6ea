"""Schedules in SQLite: the `schedules` table (schema migration 8), each step one
`BEGIN IMMEDIATE` transaction on the broker's writer, the twins of the `sched_*.lua` scripts.
A schedule's runs are its jobs (`jobs.sched_name`), read through their own index.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from conveyor.brokers.base import Page
from conveyor.brokers.sqlite.connection import now_ms
from conveyor.brokers.sqlite.events import arrival, emit
from conveyor.brokers.sqlite.records import LIST_COLUMNS, queued_score, row_to_job
from conveyor.brokers.sqlite.transitions import take_seqs
from conveyor.errors import CorruptRecord, ValidationError
from conveyor.ids import UID_RE
from conveyor.jobs import LIVE_STATES, JobState
from conveyor.queues import QUEUE_NAME_RE
from conveyor.schedules.store import (
    Definition,
    DueRow,
    FireEntry,
    FireOutcome,
    ResolvedJob,
    StoredSchedule,
    due_score,
    stored_from,
)

if TYPE_CHECKING:
    from conveyor.brokers.sqlite.broker import SqliteBroker

log = logging.getLogger("conveyor.broker.sqlite")

_READ = ("queue", "def", "paused", "next_ms", "created_ms", "updated_ms", "fired", "skipped",
         "missed", "last_tick", "last_job")
_SELECT = "SELECT name, " + ", ".join(_READ) + " FROM schedules"
_LIVE = {str(s) for s in LIVE_STATES}
_INSERT_JOB = (
    "INSERT INTO jobs (queue, uid, type, payload, state, score, priority, seq, max_attempts,"
    " timeout_ms, created_ms, run_at_ms, idem, fp, sched_name, sched_tick)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?)"
)


def _stored(row: Any) -> StoredSchedule:
    name, queue, def_json, paused, nxt, created, updated, fired, skipped, missed, lt, lj = row
    uid = lj.rpartition(":")[2] if isinstance(lj, str) else None
    return stored_from(name, queue, {
        "def": def_json, "paused": "1" if paused else "0", "next": nxt, "created": created,
        "updated": updated, "fired": fired, "skipped": skipped, "missed": missed,
        "last_tick": lt, "last_job": uid,
    })


def _valid_name(name: str) -> bool:
    return isinstance(name, str) and bool(QUEUE_NAME_RE.fullmatch(name))


def _upsert(conn: sqlite3.Connection, d: Definition, paused: bool, fresh: int | None,
            *, keep: bool) -> str:
    now = now_ms()
    overlap = d.schedule.overlap
    row = conn.execute("SELECT queue, fp, tfp, paused, next_ms FROM schedules WHERE name = ?",
                       (d.name,)).fetchone()
    if row is None:
        p = bool(paused)
        conn.execute(
            "INSERT INTO schedules (name, queue, def, job, fp, tfp, overlap, paused, next_ms,"
            " due_ms, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (d.name, d.queue, d.def_json, d.job.to_json(), d.fp, d.tfp, overlap, int(p),
             fresh, None if p else due_score(overlap, fresh), now, now))
        return "created"
    queue, fp, tfp, was_raw, nxt = row
    was = bool(was_raw)
    p = was if keep else paused
    if fp == d.fp and p == was and queue == d.queue:
        return "same"
    if tfp != d.tfp or (was and not p) or not isinstance(nxt, int):
        nxt = fresh
    conn.execute(
        "UPDATE schedules SET queue = ?, def = ?, job = ?, fp = ?, tfp = ?, overlap = ?,"
        " paused = ?, next_ms = ?, due_ms = ?, updated_ms = ? WHERE name = ?",
        (d.queue, d.def_json, d.job.to_json(), d.fp, d.tfp, overlap, int(p), nxt,
         None if p else due_score(overlap, nxt), now, d.name))
    return "replaced"


def _set_paused(conn: sqlite3.Connection, name: str, paused: bool, fresh: int | None) -> bool:
    row = conn.execute("SELECT paused, overlap FROM schedules WHERE name = ?",
                       (name,)).fetchone()
    if row is None:
        return False
    if bool(row[0]) == paused:
        return True
    now = now_ms()
    if paused:
        conn.execute("UPDATE schedules SET paused = 1, due_ms = NULL, updated_ms = ?"
                     " WHERE name = ?", (now, name))
    else:
        conn.execute("UPDATE schedules SET paused = 0, next_ms = ?, due_ms = ?, updated_ms = ?"
                     " WHERE name = ?", (fresh, due_score(row[1], fresh), now, name))
    return True


def _fire(conn: sqlite3.Connection, queue: str, entries: list[FireEntry]) -> list[FireOutcome]:
    now = now_ms()
    out: list[FireOutcome] = []
    for e in entries:
        row = conn.execute(
            "SELECT fp, next_ms, paused, job, overlap, last_job, queue FROM schedules"
            " WHERE name = ?", (e.name,)).fetchone()
        manual = e.expect_next is None
        status = None
        if row is None or row[6] != queue:
            status = "gone"
        elif row[0] != e.fp:
            status = "changed"
        elif not manual and row[2]:
            status = "paused"
        elif not manual and row[1] != e.expect_next:
            status = "stale"
        else:
            try:
                tpl = ResolvedJob.from_json(e.name, row[3])
            except Exception:
                status = "corrupt"
        if status is not None:
            out.append(FireOutcome(e.name, status))
            continue
        overlap, last = row[4], row[5]
        made: list[str] = []
        skipped = 0
        last_tick: int | None = None
        touched = False
        for tick, uid in zip(e.ticks, e.uids, strict=True):
            if not manual and overlap == "skip" and last:
                st = conn.execute("SELECT state FROM jobs WHERE queue = ? AND uid = ?",
                                  (queue, last.rpartition(":")[2])).fetchone()
                if st is not None and st[0] in _LIVE:
                    skipped += 1
                    continue
            idem = None if tick is None else f"sched:{e.name}:{tick}"
            held = None if idem is None else conn.execute(
                "SELECT uid FROM jobs WHERE queue = ? AND idem = ?", (queue, idem)).fetchone()
            if held is not None:
                uid = held[0]
            else:
                due = now if tick is None else tick
                seq = take_seqs(conn, queue, 1)
                state = JobState.SCHEDULED if due > now else JobState.QUEUED
                score = due if state == JobState.SCHEDULED else queued_score(tpl.priority, seq)
                cur = conn.execute(_INSERT_JOB, (
                    queue, uid, tpl.type, tpl.payload_json, str(state), score, tpl.priority, seq,
                    tpl.max_attempts, tpl.timeout_ms, now, due, idem, e.name, tick))
                assert cur.lastrowid is not None
                emit(conn, cur.lastrowid, arrival(state))
                made.append(f"{queue}:{uid}")
            last, last_tick, touched = f"{queue}:{uid}", tick, True
        if touched:
            conn.execute("UPDATE schedules SET last_job = ?, last_tick = ? WHERE name = ?",
                         (last, last_tick, e.name))
        if not manual:
            conn.execute(
                "UPDATE schedules SET fired = fired + ?, skipped = skipped + ?,"
                " missed = missed + ?, next_ms = ?, due_ms = ? WHERE name = ?",
                (len(made), skipped, e.missed, e.new_next, due_score(overlap, e.new_next),
                 e.name))
        out.append(FireOutcome(e.name, "fired", tuple(made), skipped))
    return out


class SqliteScheduleStore:
    def __init__(self, broker: SqliteBroker) -> None:
        self._b = broker
        self._writer = broker._writer
        self._reader = broker._reader

    async def now_ms(self) -> int:
        return now_ms()

    async def upsert(self, d: Definition, *, paused: bool | None, next_ms: int | None,
                     new_paused: bool = False) -> str:
        return await self._writer.write(
            lambda c: _upsert(c, d, new_paused if paused is None else paused, next_ms,
                              keep=paused is None))

    async def get(self, name: str) -> StoredSchedule | None:
        if not _valid_name(name):
            return None
        row = await self._reader.read(
            lambda c: c.execute(_SELECT + " WHERE name = ?", (name,)).fetchone())
        return None if row is None else _stored(row)

    async def page(self, limit: int, cursor: str | None) -> tuple[list[StoredSchedule],
                                                                     str | None]:
        if cursor is not None and not _valid_name(cursor):
            raise ValidationError("invalid cursor", details={"cursor": cursor})
        rows = await self._reader.read(lambda c: c.execute(
            _SELECT + " WHERE name > ? ORDER BY name LIMIT ?", (cursor or "", limit)).fetchall())
        nxt = rows[-1][0] if len(rows) == limit else None
        out: list[StoredSchedule] = []
        for r in rows:
            try:
                out.append(_stored(r))
            except CorruptRecord as exc:  # one bad record never hides the others
                log.warning("corrupt_schedule_record", extra={"error": exc.message})
        return out, nxt

    async def delete(self, name: str) -> bool:
        if not _valid_name(name):
            return False
        n = await self._writer.write(
            lambda c: c.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount)
        return bool(n)

    async def set_paused(self, name: str, paused: bool, next_ms: int | None) -> bool:
        if not _valid_name(name):
            return False
        return await self._writer.write(lambda c: _set_paused(c, name, paused, next_ms))

    async def due(self, queue: str, limit: int = 200) -> tuple[int, list[DueRow]]:
        def run(c: sqlite3.Connection) -> tuple[int, list[DueRow]]:
            now = now_ms()
            rows = c.execute(
                "SELECT name, def, fp, next_ms FROM schedules WHERE queue = ?"
                " AND due_ms IS NOT NULL AND due_ms <= ? AND paused = 0 ORDER BY due_ms LIMIT ?",
                (queue, now, limit)).fetchall()
            return now, [DueRow(n, d, fp, nx) for n, d, fp, nx in rows
                         if isinstance(nx, int) and isinstance(d, str)]

        return await self._reader.read(run)

    async def fire(self, queue: str, entries: list[FireEntry]) -> list[FireOutcome]:
        if not entries:
            return []
        out = await self._writer.write(lambda c: _fire(c, queue, entries))
        if any(o.job_ids for o in out):
            self._b._wakeup.notify()
        return out

    async def runs(self, name: str, queue: str, limit: int, cursor: str | None) -> Page:
        if cursor is not None and not UID_RE.fullmatch(cursor):
            raise ValidationError("invalid cursor", details={"cursor": cursor})
        rows = await self._reader.read(lambda c: c.execute(
            f"SELECT {LIST_COLUMNS} FROM jobs WHERE queue = ? AND sched_name = ? AND uid < ?"
            " ORDER BY uid DESC LIMIT ?", (queue, name, cursor or "g", limit)).fetchall())
        jobs = [row_to_job(r, strict=False) for r in rows]
        return Page(items=jobs, next_cursor=rows[-1][1] if len(rows) == limit else None)

    async def job_states(self, job_ids: list[str]) -> list[JobState | None]:
        jobs = await self._b.get_many(job_ids)
        return [None if j is None else j.state for j in jobs]

