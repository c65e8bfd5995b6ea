"""Job logs in SQLite: the `job_logs` table (migration 7), appended by the lease holder in
one write transaction per batch, trimmed to the last `MAX_LINES` lines within `MAX_BYTES`,
and deleted with the job by a trigger (whatever deletes the job row)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

#: (queue, uid, token, lines)
Append = tuple[str, str, str, Sequence[str]]


def append(conn: sqlite3.Connection, items: Sequence[Append], max_lines: int,
           max_bytes: int) -> list[bool]:
    """Keep each item's lines while its job is RUNNING under that token; False: refused."""
    out = []
    for queue, uid, token, lines in items:
        row = conn.execute(
            "SELECT id FROM jobs WHERE queue = ? AND uid = ? AND state = 'running'"
            " AND token = ?", (queue, uid, token),
        ).fetchone()
        if row is None:
            out.append(False)
            continue
        out.append(True)
        if not lines:
            continue
        job = int(row[0])
        conn.executemany(
            "INSERT INTO job_logs (job, line, bytes) VALUES (?, ?, ?)",
            [(job, line, len(line.encode("utf-8", "surrogatepass")))
             for line in lines[-max_lines:]],
        )
        _trim(conn, job, max_lines, max_bytes)
    return out


def _trim(conn: sqlite3.Connection, job: int, max_lines: int, max_bytes: int) -> None:
    """Drop the oldest lines past either bound (at most max_lines + a batch are read)."""
    total, cut = 0, None
    for rid, size in conn.execute(
        "SELECT id, bytes FROM job_logs WHERE job = ? ORDER BY id DESC", (job,)
    ):
        total += int(size)
        max_lines -= 1
        if total > max_bytes or max_lines < 0:
            cut = int(rid)
            break
    if cut is not None:
        conn.execute("DELETE FROM job_logs WHERE job = ? AND id <= ?", (job, cut))


def read(conn: sqlite3.Connection, queue: str, uid: str) -> list[str]:
    return [str(line) for (line,) in conn.execute(
        "SELECT l.line FROM job_logs l JOIN jobs j ON j.id = l.job"
        " WHERE j.queue = ? AND j.uid = ? ORDER BY l.id", (queue, uid),
    )]
