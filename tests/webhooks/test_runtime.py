"""Without `configure_webhooks`, the `conveyor.webhook` handler finds the subscriptions
through the sending worker's own settings (CONVEYOR_BROKER_URL / CONVEYOR_KEY_PREFIX), as a
`conveyor worker --queues webhooks` process does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conveyor.brokers.base import Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor
from conveyor.jobs import TERMINAL_STATES, JobState
from conveyor.settings import get_settings
from conveyor.webhooks.fanout import deliveries_for
from conveyor.webhooks.model import SubscriptionSpec
from conveyor.webhooks.runtime import close_default_runtime, current_runtime
from conveyor.webhooks.store import WebhookStore, subscribe
from tests.support.env import REDIS_URL
from tests.support.waits import wait_for_state
from tests.webhooks.spec_verifier import verify
from tests.webhooks.webhook_receiver import Receiver, always
from tests.webhooks.webhook_support import make_event, webhook_settings


@pytest.fixture
def worker_env(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process environment names this test's broker, as a worker's would."""
    if isinstance(broker, RedisBroker):
        monkeypatch.setenv("CONVEYOR_BROKER_URL", REDIS_URL)
        monkeypatch.setenv("CONVEYOR_KEY_PREFIX", broker.keys.prefix)
    else:
        assert isinstance(broker, SqliteBroker)
        monkeypatch.setenv("CONVEYOR_BROKER_URL", f"sqlite:///{broker.path}")
    monkeypatch.setenv("CONVEYOR_WEBHOOK_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    try:
        yield
    finally:
        get_settings.cache_clear()


async def test_the_handler_reads_subscriptions_through_the_worker_settings(
    store: WebhookStore, client: AsyncConveyor, receiver: Callable[..., Receiver],
    run_worker: Callable[..., Any], worker_env: None,
) -> None:
    rx = receiver(always(200))
    sub = await subscribe(store, SubscriptionSpec(url=rx.url(), events=["job.succeeded"]),
                          settings=webhook_settings())
    [res] = await client.enqueue_many(deliveries_for(make_event(), [sub],
                                                     settings=webhook_settings()))
    try:
        async with run_worker():
            job = await wait_for_state(client, res.job_id, TERMINAL_STATES, 30)
        runtime = await current_runtime()
        assert runtime.settings.webhook_allow_private is True  # the environment's settings
        assert await runtime.store.get(sub.id) == sub
    finally:
        await close_default_runtime()
    assert job.state == JobState.SUCCEEDED, job.last_error
    [hit] = rx.snapshot()
    verify(sub.secret.get_secret_value(), hit.body, hit.headers)
