"""Helpers of the webhook tests (a plain module: test files import it by name): worker
settings with fast retries, events, and `Hooks`, what a delivery test works with."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conveyor.client import AsyncConveyor
from conveyor.events.model import EventName, JobEvent
from conveyor.jobs import TERMINAL_STATES, Job, JobState
from conveyor.settings import Settings
from conveyor.webhooks.fanout import deliveries_for
from conveyor.webhooks.model import Subscription, SubscriptionSpec
from conveyor.webhooks.store import WebhookStore, subscribe
from tests.support.inproc import make_settings
from tests.support.waits import wait_for_state
from tests.webhooks.webhook_receiver import Receiver

WEBHOOK_QUEUE = "webhooks"
_event_ids = itertools.count(1)


def webhook_settings(**overrides: Any) -> Settings:
    """Worker settings with fast retries; the receiver is on 127.0.0.1, so private allowed."""
    base: dict[str, Any] = {
        "webhook_allow_private": True, "webhook_retry_base_s": 0.05,
        "webhook_retry_cap_s": 0.2, "webhook_timeout_s": 5.0, "webhook_max_attempts": 10,
    }
    base.update(overrides)
    return make_settings(**base)


def make_event(
    event: EventName = EventName.SUCCEEDED, *, queue: str = "default", type: str = "report.build",
    **kw: Any,
) -> JobEvent:
    n = next(_event_ids)
    state = {EventName.SUCCEEDED: JobState.SUCCEEDED, EventName.DEAD: JobState.DEAD,
             EventName.ENQUEUED: JobState.QUEUED}.get(event, JobState.RUNNING)
    fields: dict[str, Any] = {
        "id": f"{1_700_000_000_000 + n}-0", "job_id": f"{queue}:{n:032x}", "queue": queue,
        "type": type, "event": event, "state": state, "attempt": 1,
        "at": datetime(2026, 1, 2, 3, 4, 5, n * 1000 % 1_000_000, tzinfo=UTC),
        "error_code": "handler_error" if event == EventName.DEAD else None,
    }
    fields.update(kw)
    return JobEvent(**fields)


@dataclass(frozen=True)
class Hooks:
    """What a delivery test works with: the store, a client, receivers, a worker."""

    store: WebhookStore
    client: AsyncConveyor
    receiver: Callable[..., Receiver]
    run_worker: Callable[..., Any]
    #: `configure(settings=..., resolver=..., verify=...)`: what the handler uses
    configure: Callable[..., None]

    async def subscribe(self, url: str, events: list[str], **kw: Any) -> Subscription:
        spec = SubscriptionSpec(url=url, events=events, **kw)
        return await subscribe(self.store, spec, settings=webhook_settings())

    async def fan_out(
        self, events: list[JobEvent], subs: list[Subscription], **settings: Any
    ) -> list[str]:
        cfg = webhook_settings(**settings)
        requests = [r for e in events for r in deliveries_for(e, subs, settings=cfg)]
        return [r.job_id for r in await self.client.enqueue_many(requests)]

    async def finish(self, job_ids: list[str]) -> list[Job]:
        return [await wait_for_state(self.client, j, TERMINAL_STATES, 30) for j in job_ids]

    async def deliver_one(
        self, sub: Subscription, event: JobEvent | None = None, **settings: Any
    ) -> Job:
        """Fan one event out to `sub`, run a worker until its delivery job has finished."""
        [job_id] = await self.fan_out([event or make_event()], [sub], **settings)
        async with self.run_worker(settings=webhook_settings(**settings)):
            [job] = await self.finish([job_id])
        return job
