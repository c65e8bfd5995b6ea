"""Fixtures of the webhook tests: a real broker per backend (Redis under its own key prefix,
SQLite in a temp file) with its subscription store, real HTTP receivers on free ports, and
an in-process Worker serving the webhooks queue with the default registry."""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from receiver import Receiver, Respond

from conveyor.brokers.base import Broker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor
from conveyor.events.model import EventName, JobEvent
from conveyor.handlers import default_registry
from conveyor.jobs import TERMINAL_STATES, Job, JobState
from conveyor.settings import Settings
from conveyor.webhooks.fanout import deliveries_for
from conveyor.webhooks.model import Subscription, SubscriptionSpec
from conveyor.webhooks.runtime import configure_webhooks, reset_webhooks
from conveyor.webhooks.store import WebhookStore, subscribe, webhook_store
from conveyor.worker import Worker

sys.path.append(str(Path(__file__).resolve().parents[1] / "worker"))
from worker_helpers import make_settings, redis_broker, running, wait_for_state

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


@pytest.fixture(params=["redis", "sqlite"])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    if request.param == "redis":
        async with redis_broker(f"cvt-{uuid.uuid4().hex[:8]}") as b:
            yield b
        return
    sqlite = SqliteBroker(tmp_path / "webhooks.db")
    await sqlite.connect()
    try:
        yield sqlite
    finally:
        await sqlite.close()


@pytest.fixture
def store(broker: Broker) -> WebhookStore:
    return webhook_store(broker)


@pytest.fixture
def client(broker: Broker) -> AsyncConveyor:
    return AsyncConveyor(broker)


@pytest.fixture
def use_store(store: WebhookStore) -> Iterator[Callable[..., None]]:
    """`use_store(settings=..., resolver=..., verify=...)`: what this process's webhook
    handler uses (always this test's store); undone after the test."""

    def configure(*, settings: Settings | None = None, **kw: Any) -> None:
        configure_webhooks(store, settings=settings or webhook_settings(), **kw)

    configure()
    try:
        yield configure
    finally:
        reset_webhooks()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """`receiver(respond, tls=None)` starts a receiver; every one is stopped after."""
    started: list[Receiver] = []

    def start(respond: Respond, **kw: Any) -> Receiver:
        r = Receiver(respond, **kw)
        started.append(r)
        return r

    try:
        yield start
    finally:
        for r in started:
            r.stop()


@pytest.fixture
def run_worker(broker: Broker) -> Callable[..., Any]:
    """`async with run_worker(settings=...) as w:` serves the webhooks queue until exit."""

    def run(*, settings: Settings | None = None, concurrency: int = 8) -> Any:
        return running(Worker(broker, queues=[WEBHOOK_QUEUE], concurrency=concurrency,
                              registry=default_registry, settings=settings or webhook_settings()))

    return run


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


@pytest.fixture
def hooks(
    store: WebhookStore, client: AsyncConveyor, receiver: Callable[..., Receiver],
    run_worker: Callable[..., Any], use_store: Callable[..., None],
) -> Hooks:
    return Hooks(store, client, receiver, run_worker, use_store)
