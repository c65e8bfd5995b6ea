"""Per-minute outcome counters of a queue (issue 18) on SQLite: one row per (queue, epoch
minute, type), bumped inside the transition's own transaction (ack, fail, reap), so the
series equal what happened. Kept like Redis' hour hashes: an hour's rows go 7 days after the
hour ends (`expire_series`, in the retention step), and an hour older than the last day's
minutes is rolled up into one row per type on its first minute (`rollup_series`, the same
step), so an hourly read (`read_series_hours`) sums rolled and unrolled hours alike."""

from __future__ import annotations

import sqlite3

from conveyor.brokers.base import SeriesPoint, last_rollable_hour

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


def read_series_hours(
    conn: sqlite3.Connection, queue: str, hours: range, type_: str | None
) -> list[SeriesPoint]:
    """One point per epoch hour of `hours` (a point starts at the hour's first minute),
    zeros filled; one indexed range read."""
    sql = ("SELECT minute / 60, sum(succeeded), sum(failed), sum(dead) FROM series"
           " WHERE queue = ? AND minute BETWEEN ? AND ?")
    args: tuple[object, ...] = (queue, hours.start * 60, hours.stop * 60 - 1)
    if type_ is not None:
        sql += " AND type = ?"
        args += (type_,)
    found = {}
    for hour, s, f, d in conn.execute(sql + " GROUP BY minute / 60", args):
        if isinstance(hour, int):
            found[hour] = SeriesPoint(hour * 60, *(_count(v) for v in (s, f, d)))
    return [found.get(h, SeriesPoint(h * 60)) for h in hours]


def rollup_series(conn: sqlite3.Connection, queue: str, now: int, hours: int) -> None:
    """Roll up to `hours` of the queue's oldest hours that ended before the last day's first
    minute into one row per type on the hour's first minute, in the caller's (the writer's)
    transaction: the new row holds the sum of the hour's rows (its own first-minute row
    included), then the other minutes go. Rerun on a rolled hour, it sums a row to itself;
    the writer's lock orders two callers, so nothing is counted twice."""
    upto = last_rollable_hour(now // 60_000)
    row = conn.execute(  # the index's order: stops at the first row off an hour's start
        "SELECT minute FROM series WHERE queue = ? AND minute < ? AND minute % 60 != 0"
        " ORDER BY minute LIMIT 1", (queue, (upto + 1) * 60)).fetchone()
    if row is None or not isinstance(row[0], int):
        return
    first, last = row[0] // 60 * 60, (min(upto, row[0] // 60 + hours - 1) + 1) * 60 - 1
    conn.execute(
        "INSERT INTO series (queue, minute, type, succeeded, failed, dead)"
        " SELECT queue, minute / 60 * 60, type, sum(succeeded), sum(failed), sum(dead)"
        " FROM series WHERE queue = ? AND minute BETWEEN ? AND ?"
        " GROUP BY minute / 60, type ON CONFLICT (queue, minute, type) DO UPDATE"
        " SET succeeded = excluded.succeeded, failed = excluded.failed, dead = excluded.dead",
        (queue, first, last),
    )
    conn.execute(
        "DELETE FROM series WHERE queue = ? AND minute BETWEEN ? AND ? AND minute % 60 != 0",
        (queue, first, last),
    )


def expire_series(conn: sqlite3.Connection, queue: str, now: int, limit: int) -> None:
    oldest_kept = (now // 3_600_000 - KEEP_HOURS) * 60
    conn.execute(
        "DELETE FROM series WHERE (queue, minute, type) IN (SELECT queue, minute, type"
        " FROM series WHERE queue = ? AND minute < ? LIMIT ?)",
        (queue, oldest_kept, limit),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
