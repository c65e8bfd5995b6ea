"""Fixtures of the webhook tests: a real broker per backend (Redis under its own key prefix,
SQLite in a temp file) with its subscription store, real HTTP receivers on free ports, and
an in-process Worker serving the webhooks queue with the default registry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.brokers.base import Broker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor
from conveyor.handlers import default_registry
from conveyor.settings import Settings
from conveyor.webhooks.runtime import configure_webhooks, reset_webhooks
from conveyor.webhooks.store import WebhookStore, webhook_store
from conveyor.worker import Worker
from tests.support.env import new_prefix
from tests.support.inproc import redis_broker, running
from tests.webhooks.webhook_receiver import Receiver, Respond
from tests.webhooks.webhook_support import WEBHOOK_QUEUE, Hooks, webhook_settings


@pytest.fixture(params=["redis", "sqlite"])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    if request.param == "redis":
        async with redis_broker(new_prefix()) as b:
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


@pytest.fixture
def hooks(
    store: WebhookStore, client: AsyncConveyor, receiver: Callable[..., Receiver],
    run_worker: Callable[..., Any], use_store: Callable[..., None],
) -> Hooks:
    return Hooks(store, client, receiver, run_worker, use_store)
