"""Per-minute outcome counters of a queue (issue 18) on SQLite: one row per (queue, epoch
minute, type), bumped inside the transition's own transaction (ack, fail, reap), so the
series equal what happened. Kept like Redis' hour hashes: an hour's rows go 7 days after the
hour ends (`expire_series`, in the retention step)."""

from __future__ import annotations

import sqlite3

from conveyor.brokers.base import SeriesPoint

#: the kinds the Lua helper names 's', 'f', 'd', and their columns
COLUMNS = {"s": "succeeded", "f": "failed", "d": "dead"}
KEEP_HOURS = 7 * 24


def count_series(conn: sqlite3.Connection, rid: int, now: int, kind: str) -> None:
    """One more `kind` this minute for the queue and type of job row `rid`."""
    column = COLUMNS[kind]
    conn.execute(
        f"INSERT INTO series (queue, minute, type, {column}) SELECT queue, ?, type, 1"
        f" FROM jobs WHERE id = ? ON CONFLICT (queue, minute, type) DO UPDATE"
        f" SET {column} = {column} + 1",
        (now // 60_000, rid),
    )


def read_series(
    conn: sqlite3.Connection, queue: str, first: int, last: int, type_: str | None
) -> list[SeriesPoint]:
    """Minutes first..last (epoch minutes), zeros filled; one indexed range read."""
    sql = ("SELECT minute, sum(succeeded), sum(failed), sum(dead) FROM series"
           " WHERE queue = ? AND minute BETWEEN ? AND ?")
    args: tuple[object, ...] = (queue, first, last)
    if type_ is not None:
        sql += " AND type = ?"
        args += (type_,)
    found = {}
    for minute, s, f, d in conn.execute(sql + " GROUP BY minute", args):
        if isinstance(minute, int):
            found[minute] = SeriesPoint(minute, *(_count(v) for v in (s, f, d)))
    return [found.get(m, SeriesPoint(m)) for m in range(first, last + 1)]


def expire_series(conn: sqlite3.Connection, queue: str, now: int, limit: int) -> None:
    oldest_kept = (now // 3_600_000 - KEEP_HOURS) * 60
    conn.execute(
        "DELETE FROM series WHERE (queue, minute, type) IN (SELECT queue, minute, type"
        " FROM series WHERE queue = ? AND minute < ? LIMIT ?)",
        (queue, oldest_kept, limit),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
