"""Webhook subscriptions in Redis: a hash per subscription (`<prefix>:webhook:<id>`, the
fields of `webhooks.model.to_record`) and the set of ids (`<prefix>:webhooks`).

Like the worker registry, this spans no queue: each call touches one subscription's hash
and the id set, written together in MULTI (create, delete); both keys share one hash tag
(see keys.py), so the MULTI is in one Redis Cluster slot. A listing reads the set, then
the hashes in bounded pipelines. Times come from Redis `TIME`.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from conveyor.brokers.redis.cluster import Client
from conveyor.brokers.redis.keys import Keys
from conveyor.brokers.redis.scripts import Scripts
from conveyor.brokers.redis.server import unavailable
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

log = logging.getLogger("conveyor.broker.redis")

#: hashes read per pipeline by a listing
LIST_CHUNK = 100


def _ms(sec: Any, usec: Any) -> int:
    return int(sec) * 1000 + int(usec) // 1000


class RedisWebhookStore:
    def __init__(self, client: Client, keys: Keys, scripts: Scripts | None = None) -> None:
        self._client = client
        self._keys = keys
        self._scripts = scripts or Scripts()

    async def create(self, spec: SubscriptionSpec, *, sub_id: str, secret: str) -> Subscription:
        with unavailable():
            # two calls: a cluster pipeline refuses TIME (it names no key)
            sec, usec = await self._client.time()
            count = await self._client.scard(self._keys.webhooks)
            # checked before the write: two racing creates may pass the bound by one each
            if (err := limit_reached(int(count))) is not None:
                raise err
            sub = new_subscription(spec, sub_id=sub_id, secret=secret,
                                   created_ms=_ms(sec, usec))
            async with self._client.pipeline(transaction=True) as tx:
                tx.hset(self._keys.webhook(sub_id), mapping=to_record(sub))  # type: ignore[arg-type]
                tx.sadd(self._keys.webhooks, sub_id)
                await tx.execute()
        return sub

    async def get(self, sub_id: str) -> Subscription | None:
        if not is_subscription_id(sub_id):
            return None
        with unavailable():
            record = await self._client.hgetall(self._keys.webhook(sub_id))
        return from_record(sub_id, cast(dict[str, str], record)) if record else None

    async def list(self) -> list[Subscription]:
        with unavailable():
            ids = sorted(str(i) for i in await self._client.smembers(self._keys.webhooks))
            records: list[dict[str, str]] = []
            for start in range(0, len(ids), LIST_CHUNK):
                pipe = self._client.pipeline(transaction=False)
                for sub_id in ids[start : start + LIST_CHUNK]:
                    pipe.hgetall(self._keys.webhook(sub_id))
                records.extend(await pipe.execute())
        out: list[Subscription] = []
        for sub_id, record in zip(ids, records, strict=True):
            if not record or not is_subscription_id(sub_id):
                continue  # deleted meanwhile, or not ours
            try:
                out.append(from_record(sub_id, record))
            except CorruptRecord as exc:
                log.warning("corrupt_webhook_record", extra={"error": exc.message})
        return sorted(out, key=lambda s: (s.created_at, s.id))

    async def delete(self, sub_id: str) -> bool:
        if not is_subscription_id(sub_id):
            return False
        with unavailable():
            async with self._client.pipeline(transaction=True) as tx:
                tx.srem(self._keys.webhooks, sub_id)
                tx.delete(self._keys.webhook(sub_id))
                removed, deleted = await tx.execute()
        return bool(removed or deleted)

    async def disable(self, sub_id: str, reason: str) -> bool:
        """One script (webhook_disable.lua), so a delete in between cannot leave a stray half
        record."""
        if not is_subscription_id(sub_id):
            return False
        with unavailable():
            done = await self._scripts.run(self._client, "webhook_disable",
                                           [self._keys.webhook(sub_id)],
                                           [reason[:MAX_REASON_LENGTH]])
        return bool(done)
