"""Webhook subscription storage on every backend: the `WebhookStore` each broker provides
(`webhook_store(broker)`) keeps, lists, disables and deletes subscriptions the same way, reads
back only well-formed records, and `subscribe` stores nothing it refuses.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

import conveyor.webhooks.model as webhook_model
from conveyor.brokers.base import Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.errors import CorruptRecord, ValidationError
from conveyor.settings import Settings
from conveyor.webhooks.model import SubscriptionSpec, new_subscription_id
from conveyor.webhooks.signing import generate_secret
from conveyor.webhooks.store import WebhookStore, subscribe, webhook_store
from conveyor.webhooks.urls import WebhookUrlError
from tests.brokers.conformance import BrokerFactory

SPEC = SubscriptionSpec(url="https://hooks.example/in", events=["job.succeeded", "job.dead"],
                        queues=["default", "reports"], types=["report.build"])


async def _create(store: WebhookStore, spec: SubscriptionSpec = SPEC) -> Any:
    return await store.create(spec, sub_id=new_subscription_id(), secret=generate_secret())


async def _damage(broker: Broker, sub_id: str, field: str, value: str) -> None:
    """Overwrite one field of a stored record, as a bad write or a bad hand edit would."""
    if isinstance(broker, RedisBroker):
        await broker.client.hset(broker.keys.webhook(sub_id), field, value)
        return
    assert isinstance(broker, SqliteBroker)
    with sqlite3.connect(broker.path) as conn:
        (text,) = conn.execute("SELECT record FROM webhooks WHERE id = ?", (sub_id,)).fetchone()
        conn.execute("UPDATE webhooks SET record = ? WHERE id = ?",
                     (json.dumps({**json.loads(text), field: value}), sub_id))
    conn.close()


async def test_create_then_get_and_list_round_trip(broker: Broker) -> None:
    store = webhook_store(broker)
    before = await broker.now_ms()
    secret = generate_secret()
    sub_id = new_subscription_id()
    created = await store.create(SPEC, sub_id=sub_id, secret=secret)
    after = await broker.now_ms()
    assert created.id == sub_id and created.secret.get_secret_value() == secret
    assert before <= created.created_at.timestamp() * 1000 <= after + 1  # the broker's clock
    got = await store.get(sub_id)
    assert got == created
    assert got.url == SPEC.url and got.events == SPEC.events
    assert got.queues == SPEC.queues and got.types == SPEC.types and got.enabled
    assert await store.list() == [created]
    assert "secret" not in created.public() and created.created()["secret"] == secret


async def test_filters_left_out_stay_none(broker: Broker) -> None:
    store = webhook_store(broker)
    sub = await _create(store, SubscriptionSpec(url="http://hooks.example/", events=["job.dead"]))
    got = await store.get(sub.id)
    assert got is not None and got.queues is None and got.types is None


async def test_list_is_oldest_first_and_seen_by_another_broker(
    broker: Broker, make_broker: BrokerFactory
) -> None:
    store = webhook_store(broker)
    made = [await _create(store) for _ in range(5)]
    other = webhook_store(await make_broker())
    listed = await other.list()
    # by creation time (ms), ties by id
    assert listed == sorted(made, key=lambda s: (s.created_at, s.id))


async def test_delete_removes_it_once(broker: Broker) -> None:
    store = webhook_store(broker)
    keep, gone = await _create(store), await _create(store)
    assert await store.delete(gone.id) is True
    assert await store.get(gone.id) is None
    assert [s.id for s in await store.list()] == [keep.id]
    assert await store.delete(gone.id) is False


async def test_disable_keeps_the_first_reason(broker: Broker) -> None:
    store = webhook_store(broker)
    sub = await _create(store)
    assert await store.disable(sub.id, "410 Gone from https://hooks.example/in") is True
    assert await store.disable(sub.id, "a later reason") is True
    got = await store.get(sub.id)
    assert got is not None and not got.enabled and got.disabled_at is not None
    assert got.disabled_reason == "410 Gone from https://hooks.example/in"
    assert got.secret == sub.secret and got.created_at == sub.created_at
    assert (await store.list())[0].disabled_at == got.disabled_at


async def test_disable_of_a_missing_subscription_writes_nothing(broker: Broker) -> None:
    store = webhook_store(broker)
    sub = await _create(store)
    await store.delete(sub.id)
    assert await store.disable(sub.id, "gone") is False
    assert await store.get(sub.id) is None
    if isinstance(broker, RedisBroker):  # no stray half record left behind
        assert not await broker.client.exists(broker.keys.webhook(sub.id))


@pytest.mark.parametrize("bad_id", ["", "wh_", "wh_XYZ", "../etc", "wh_" + "0" * 31 + "g", "*"])
async def test_malformed_ids_are_simply_not_found(broker: Broker, bad_id: str) -> None:
    store = webhook_store(broker)
    await _create(store)
    assert await store.get(bad_id) is None
    assert await store.delete(bad_id) is False
    assert await store.disable(bad_id, "x") is False
    assert len(await store.list()) == 1


async def test_the_registry_is_bounded(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhook_model, "MAX_SUBSCRIPTIONS", 2)
    store = webhook_store(broker)
    await _create(store)
    await _create(store)
    with pytest.raises(ValidationError) as err:
        await _create(store)
    assert err.value.details[0]["reason"] == "limit"
    assert len(await store.list()) == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [("secret", "whsec_short"), ("events", "not json"), ("created_ms", "soon"),
     ("queues", '{"a": 1}'), ("url", "")],
)
async def test_a_corrupt_record_fails_loudly_alone(
    broker: Broker, field: str, value: str
) -> None:
    store = webhook_store(broker)
    bad, good = await _create(store), await _create(store)
    await _damage(broker, bad.id, field, value)
    with pytest.raises(CorruptRecord) as err:
        await store.get(bad.id)
    assert err.value.code == "corrupt_record" and bad.id in err.value.message
    assert [s.id for s in await store.list()] == [good.id]  # the others still fan out
    assert await store.delete(bad.id) is True  # and it can still be removed


async def test_subscribe_refuses_loopback_and_stores_nothing(broker: Broker) -> None:
    store = webhook_store(broker)
    strict = Settings(webhook_allow_private=False)
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]:9/"):
        with pytest.raises(WebhookUrlError) as err:
            await subscribe(store, SPEC.model_copy(update={"url": url}), settings=strict)
        assert err.value.code == "validation_error" and err.value.reason == "loopback"
        assert err.value.details[0]["loc"] == ["url"]
    assert await store.list() == []


async def test_subscribe_with_private_allowed_stores_a_new_secret(broker: Broker) -> None:
    store = webhook_store(broker)
    lax = Settings(webhook_allow_private=True)
    spec = SPEC.model_copy(update={"url": "HTTP://127.0.0.1:9/Hook?x=1"})
    one = await subscribe(store, spec, settings=lax)
    two = await subscribe(store, spec, settings=lax)
    assert one.url == "http://127.0.0.1:9/Hook?x=1"  # as httpx will send it
    assert one.secret != two.secret and one.id != two.id
    assert one.secret.get_secret_value().startswith("whsec_")
    # listed oldest first, ties (the same millisecond) broken by id
    expected = sorted([one, two], key=lambda s: (s.created_at, s.id))
    assert [s.id for s in await store.list()] == [s.id for s in expected]
