"""Webhook subscriptions in SQLite: the `webhooks` table (schema migration 4), one row per
subscription holding the same record as the Redis hash (JSON), each call one transaction on
the broker's writer or reader connection.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from conveyor.brokers.sqlite.connection import Database, now_ms
from conveyor.errors import CorruptRecord
from conveyor.webhooks.model import (
    MAX_REASON_LENGTH,
    Subscription,
    SubscriptionSpec,
    from_record,
    is_subscription_id,
    limit_reached,
    new_subscription,
    to_record,
)

if TYPE_CHECKING:
    from conveyor.brokers.sqlite.broker import SqliteBroker

log = logging.getLogger("conveyor.broker.sqlite")


def _parse(sub_id: str, text: Any) -> Subscription:
    try:
        record = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise CorruptRecord(f"webhook subscription {sub_id[:64]!r} is not a JSON object",
                            details={"subscription_id": sub_id[:64]})
    return from_record(sub_id, record)


class SqliteWebhookStore:
    def __init__(self, writer: Database, reader: Database) -> None:
        self._writer = writer
        self._reader = reader

    @classmethod
    def for_broker(cls, broker: SqliteBroker) -> SqliteWebhookStore:
        """On the broker's own connections (its writer serialises every write)."""
        return cls(broker._writer, broker._reader)

    async def create(self, spec: SubscriptionSpec, *, sub_id: str, secret: str) -> Subscription:
        def run(conn: sqlite3.Connection) -> Subscription:
            (count,) = conn.execute("SELECT count(*) FROM webhooks").fetchone()
            if (err := limit_reached(int(count))) is not None:
                raise err
            now = now_ms()
            sub = new_subscription(spec, sub_id=sub_id, secret=secret, created_ms=now)
            conn.execute("INSERT INTO webhooks (id, created_ms, record) VALUES (?, ?, ?)",
                         (sub_id, now, json.dumps(to_record(sub))))
            return sub

        return await self._writer.write(run)

    async def get(self, sub_id: str) -> Subscription | None:
        if not is_subscription_id(sub_id):
            return None
        row = await self._reader.read(
            lambda c: c.execute("SELECT record FROM webhooks WHERE id = ?", (sub_id,)).fetchone()
        )
        return None if row is None else _parse(sub_id, row[0])

    async def list(self) -> list[Subscription]:
        rows = await self._reader.read(
            lambda c: c.execute("SELECT id, record FROM webhooks ORDER BY created_ms, id")
            .fetchall()
        )
        out: list[Subscription] = []
        for sub_id, text in rows:
            try:
                if not is_subscription_id(sub_id):
                    raise CorruptRecord(f"bad webhook subscription id {str(sub_id)[:64]!r}")
                out.append(_parse(sub_id, text))
            except CorruptRecord as exc:
                log.warning("corrupt_webhook_record", extra={"error": exc.message})
        return out

    async def delete(self, sub_id: str) -> bool:
        if not is_subscription_id(sub_id):
            return False
        deleted = await self._writer.write(
            lambda c: c.execute("DELETE FROM webhooks WHERE id = ?", (sub_id,)).rowcount
        )
        return bool(deleted)

    async def disable(self, sub_id: str, reason: str) -> bool:
        if not is_subscription_id(sub_id):
            return False

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT record FROM webhooks WHERE id = ?", (sub_id,)).fetchone()
            if row is None:
                return False
            sub = _parse(sub_id, row[0])  # checked before the write
            if sub.disabled_at is None:
                record = {**to_record(sub), "disabled_ms": str(now_ms()),
                          "disabled_reason": reason[:MAX_REASON_LENGTH]}
                conn.execute("UPDATE webhooks SET record = ? WHERE id = ?",
                             (json.dumps(record), sub_id))
            return True

        return await self._writer.write(run)
