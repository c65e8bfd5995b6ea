"""`cv.webhooks` on both clients over the real Redis (and on SQLite through the async one):
create shows the secret, list / get never lose it, delete, and bad input refused before
anything is stored. URLs use public IP literals: no DNS."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor, Conveyor
from conveyor.errors import ValidationError, WebhookNotFound
from conveyor.settings import Settings
from conveyor.webhooks.client import AsyncWebhooks
from conveyor.webhooks.signing import check_secret
from conveyor.webhooks.urls import WebhookUrlError

URL = "https://8.8.8.8/hook"


async def _round_trip(hooks: AsyncWebhooks) -> None:
    sub = await hooks.create(URL, ["job.dead"], queues=["mail"], types=["report.build"])
    check_secret(sub.secret.get_secret_value())
    assert (sub.events, sub.queues, sub.types) == (["job.dead"], ["mail"], ["report.build"])
    again = await hooks.get(sub.id)
    assert again == sub  # the stored one, secret included
    assert [s.id for s in await hooks.list()] == [sub.id]
    await hooks.delete(sub.id)
    with pytest.raises(WebhookNotFound):
        await hooks.get(sub.id)
    with pytest.raises(WebhookNotFound):
        await hooks.delete(sub.id)
    with pytest.raises(WebhookNotFound):
        await hooks.get("not-an-id")


async def test_async_client_round_trip_on_redis(aclient: AsyncConveyor) -> None:
    await _round_trip(aclient.webhooks)
    assert aclient.webhooks is aclient.webhooks


async def test_async_client_round_trip_on_sqlite(tmp_path: Path) -> None:
    async with AsyncConveyor(SqliteBroker(tmp_path / "c.db")) as client:
        await _round_trip(client.webhooks)


async def test_bad_input_is_refused_and_nothing_stored(aclient: AsyncConveyor) -> None:
    hooks = aclient.webhooks
    for call in (hooks.create(URL, ["job.finished"]), hooks.create(URL, []),
                 hooks.create(URL, ["job.dead"], queues=["bad name"]),
                 hooks.create(URL, ["job.dead"], types=["conveyor.webhook"])):
        with pytest.raises(ValidationError) as err:
            await call
        assert err.value.details and err.value.details[0]["loc"]
    with pytest.raises(WebhookUrlError) as refused:
        await hooks.create("http://127.0.0.1:9/x", ["job.dead"])
    assert refused.value.reason == "loopback"
    assert await hooks.list() == []
    private = AsyncWebhooks(aclient.broker, Settings(webhook_allow_private=True))
    made = await private.create("http://127.0.0.1:9/x", ["job.dead"])
    assert [s.id for s in await hooks.list()] == [made.id]


def test_sync_client(client: Conveyor) -> None:
    sub = client.webhooks.create(URL, ["job.succeeded", "job.dead"])
    assert client.webhooks.get(sub.id).url == URL
    assert [s.id for s in client.webhooks.list()] == [sub.id]
    client.webhooks.delete(sub.id)
    assert client.webhooks.list() == []
    with pytest.raises(WebhookNotFound):
        client.webhooks.delete(sub.id)
