"""From an event to its deliveries: what the event log calls for each event it reads.

Each delivery is a `conveyor.webhook` job whose idempotency key is made of the subscription
and the event (`webhook:<subscription id>:<webhook-id>`), so an event read twice (a follower
restarted from an older cursor) enqueues nothing new while the first delivery job is kept
(until retention removes it); the receiver can also drop duplicates by `webhook-id`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from conveyor.client import JobRequest
from conveyor.events.model import JobEvent
from conveyor.settings import Settings, get_settings
from conveyor.webhooks.model import WEBHOOK_TYPE, Subscription, matches, message_id
from conveyor.webhooks.store import WebhookStore


def delivery_key(subscription_id: str, event: JobEvent) -> str:
    return f"webhook:{subscription_id}:{message_id(event)}"


def deliveries_for(
    event: JobEvent, subscriptions: Iterable[Subscription], *, settings: Settings | None = None
) -> list[JobRequest]:
    """One job request per subscription `event` matches (enabled, its event name, queue and
    type filters; never an event of a delivery job itself), for `enqueue_many`."""
    cfg = settings or get_settings()
    data = event.as_json()
    return [
        JobRequest(
            type=WEBHOOK_TYPE,
            payload={"subscription_id": sub.id, "event": data},
            queue=cfg.webhook_queue,
            max_attempts=cfg.webhook_max_attempts,
            idempotency_key=delivery_key(sub.id, event),
        )
        for sub in subscriptions
        if matches(sub, event)
    ]


class SubscriptionCache:
    """The subscriptions, read at most once per `ttl_s`, so a busy event log does not list
    them per event. A subscription created meanwhile may miss up to `ttl_s` of events; one
    deleted or disabled meanwhile gets jobs that the handler skips."""

    def __init__(
        self, store: WebhookStore, *, ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._subs: list[Subscription] = []
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._read_at = None

    async def get(self) -> list[Subscription]:
        async with self._lock:  # one read at a time, however many callers
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._ttl_s:
                self._subs = await self._store.list()
                self._read_at = now
            return self._subs
