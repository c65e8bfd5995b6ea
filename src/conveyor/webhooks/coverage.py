"""Whether webhook deliveries can go out: subscriptions exist, but does a live worker serve
the deliveries' queue (`CONVEYOR_WEBHOOK_QUEUE`)? `/readyz` and the dashboard say so when
none does, because then every delivery waits in that queue and nothing says why.

Read through a `SubscriptionCache` (at most one listing per `ttl_s`), so a probe every
second costs one small read, not a listing of every subscription.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.brokers.base import Broker, WorkerInfo
from conveyor.webhooks.fanout import SubscriptionCache
from conveyor.webhooks.model import Subscription
from conveyor.webhooks.store import webhook_store

#: the stable code of the warning (readyz `warnings[].code`)
UNSERVED = "webhooks_unserved"


@dataclass(frozen=True, slots=True)
class Unserved:
    queue: str
    subscriptions: int

    @property
    def message(self) -> str:
        n = self.subscriptions
        return (f"{n} webhook subscription{'' if n == 1 else 's'} but no live worker serves "
                f"queue {self.queue!r}: deliveries wait there until one does (run "
                f"`conveyor worker --queues {self.queue}`)")


def unserved(subs: Sequence[Subscription], workers: Sequence[WorkerInfo],
             queue: str) -> Unserved | None:
    enabled = sum(1 for s in subs if s.enabled)
    if not enabled or any(queue in w.queues for w in workers):
        return None
    return Unserved(queue, enabled)


class WebhookCoverage:
    """One per app: the cached subscriptions of the broker it first sees."""

    def __init__(self, queue: str, *, ttl_s: float = 5.0) -> None:
        self.queue = queue
        self._ttl_s = ttl_s
        self._cache: SubscriptionCache | None = None

    async def check(self, broker: Broker,
                    workers: Sequence[WorkerInfo] | None = None) -> Unserved | None:
        """None when no (enabled) subscription exists or a live worker serves the queue;
        `workers` when the caller has just read them."""
        if self._cache is None:
            self._cache = SubscriptionCache(webhook_store(broker), ttl_s=self._ttl_s)
        subs = await self._cache.get()
        if not any(s.enabled for s in subs):
            return None
        return unserved(subs, await broker.workers() if workers is None else workers,
                        self.queue)

    def invalidate(self) -> None:
        """A subscription was created or deleted here: read them again next time."""
        if self._cache is not None:
            self._cache.invalidate()
