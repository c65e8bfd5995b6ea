"""The webhook fan-out follower: every worker follows the event logs of the queues it
serves and enqueues the deliveries each event calls for (issue 17).

A `MaintenanceHook`: each maintenance tick, per queue, it reads the events after the
queue's saved cursor (`load_cursor(queue, "webhooks")`, at most 1,000), enqueues their
deliveries (`deliveries_for` over the `SubscriptionCache`), and only then saves the cursor:
at least once, and the deliveries' idempotency keys make a repeat (a crash before the save,
two workers on one queue reading the same events) enqueue nothing new. A queue followed for
the first time starts at its log's tail; with no subscription at all the cursor just moves
to the tail. Events of a queue that no worker serves are not fanned out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from conveyor.brokers.base import Broker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.errors import ConveyorError
from conveyor.settings import Settings, get_settings
from conveyor.webhooks.fanout import SubscriptionCache, deliveries_for
from conveyor.webhooks.store import webhook_store

log = logging.getLogger("conveyor.webhooks.follower")

CURSOR_NAME = "webhooks"
READ_LIMIT = 1000
ENQUEUE_CHUNK = 1000


class WebhookFanout:
    def __init__(self, *, settings: Settings | None = None, cache_ttl_s: float = 5.0) -> None:
        self._settings = settings
        self._cache_ttl_s = cache_ttl_s
        self._cache: SubscriptionCache | None = None
        self._client: AsyncConveyor | None = None

    async def __call__(self, broker: Broker, queues: Sequence[str]) -> None:
        for queue in queues:
            try:
                await self.step(broker, queue)
            except ConveyorError as exc:  # the next tick tries again from the saved cursor
                log.warning("webhook_fanout_failed", extra={"queue": queue,
                                                            "error": str(exc)[:200]})

    async def step(self, broker: Broker, queue: str) -> int:
        """One bounded step on one queue; returns how many deliveries it enqueued."""
        if self._cache is None or self._client is None:
            self._cache = SubscriptionCache(webhook_store(broker), ttl_s=self._cache_ttl_s)
            self._client = AsyncConveyor(broker)
        cursor = await broker.load_cursor(queue, CURSOR_NAME)
        subs = await self._cache.get()
        if cursor is None or not subs:
            await broker.save_cursor(queue, CURSOR_NAME, await broker.events_tail(queue))
            return 0
        page = await broker.read_events(queue, cursor, READ_LIMIT)
        if page.gap:
            log.warning("webhook_events_missed", extra={
                "queue": queue, "cursor": cursor,
                "hint": "events left the log before they were fanned out: raise "
                        "CONVEYOR_EVENTS_MAXLEN or run workers on the queue"})
        cfg = self._settings or get_settings()
        requests: list[JobRequest] = [r for ev in page.events
                                      for r in deliveries_for(ev, subs, settings=cfg)]
        for start in range(0, len(requests), ENQUEUE_CHUNK):
            await self._client.enqueue_many(requests[start : start + ENQUEUE_CHUNK])
        if page.cursor != cursor:
            await broker.save_cursor(queue, CURSOR_NAME, page.cursor)
        return len(requests)
