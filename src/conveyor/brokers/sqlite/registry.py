"""The worker registry in SQLite: one row per worker with an expiry, refreshed by its
heartbeat; a crashed worker ages out (rows past their expiry are hidden, then deleted by the
next registration of any worker)."""

from __future__ import annotations

import sqlite3

from conveyor.brokers.base import WorkerInfo
from conveyor.brokers.shell import parse_worker, worker_record
from conveyor.brokers.sqlite.connection import Database, now_ms


class WorkerRegistry:
    def __init__(self, writer: Database, reader: Database) -> None:
        self._writer = writer
        self._reader = reader

    async def register(self, info: WorkerInfo, ttl_s: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            now = now_ms()
            conn.execute(
                "INSERT INTO workers (id, info, last_seen_ms, expires_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET info = excluded.info,"
                " last_seen_ms = excluded.last_seen_ms, expires_ms = excluded.expires_ms",
                (info.id, worker_record(info, now), now, now + int(ttl_s * 1000)),
            )
            conn.execute("DELETE FROM workers WHERE expires_ms <= ?", (now,))

        await self._writer.write(run)

    async def deregister(self, worker_id: str) -> None:
        await self._writer.write(
            lambda c: c.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
        )

    async def live(self) -> list[WorkerInfo]:
        """Workers whose registration has not expired, oldest seen first."""
        rows = await self._reader.read(
            lambda c: c.execute(
                "SELECT info FROM workers WHERE expires_ms > ? ORDER BY last_seen_ms",
                (now_ms(),),
            ).fetchall()
        )
        return [w for w in (parse_worker(text) for (text,) in rows) if w is not None]
