"""The worker registry in SQLite: one row per worker with an expiry, refreshed by its
heartbeat; a crashed worker ages out (rows past their expiry are hidden, then deleted by the
next registration of any worker)."""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from conveyor.brokers.base import WorkerInfo
from conveyor.brokers.sqlite.connection import Database, now_ms

log = logging.getLogger("conveyor.broker.sqlite")


class WorkerRegistry:
    def __init__(self, writer: Database, reader: Database) -> None:
        self._writer = writer
        self._reader = reader

    async def register(self, info: dict[str, Any], ttl_s: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            now = now_ms()
            data = {**info, "last_seen_ms": now}
            conn.execute(
                "INSERT INTO workers (id, info, last_seen_ms, expires_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET info = excluded.info,"
                " last_seen_ms = excluded.last_seen_ms, expires_ms = excluded.expires_ms",
                (info["id"], json.dumps(data), now, now + int(ttl_s * 1000)),
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
        out: list[WorkerInfo] = []
        for (text,) in rows:
            try:
                out.append(WorkerInfo(**json.loads(text)))
            except (TypeError, ValueError):
                log.warning("corrupt_worker_record", extra={"record": str(text)[:200]})
        return out
