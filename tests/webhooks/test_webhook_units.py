"""The pieces without I/O: signatures (against the standard-webhooks project's published
test vector and the spec-text verifier), secrets, subscription requests, the matcher, the
fan-out's job requests, Retry-After, the retry delay and the subscription cache."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pydantic
import pytest

from conveyor.brokers.sqlite import SqliteBroker
from conveyor.events.model import JOB_TYPE_PATTERN, EventName, JobEvent
from conveyor.handlers import default_registry
from conveyor.queues import TYPE_NAME_RE
from conveyor.webhooks.delivery import retry_delay_s
from conveyor.webhooks.fanout import SubscriptionCache, deliveries_for
from conveyor.webhooks.model import (
    WEBHOOK_EVENTS,
    WEBHOOK_TYPE,
    Subscription,
    SubscriptionSpec,
    matches,
    message_id,
    new_subscription,
    new_subscription_id,
    webhook_body,
)
from conveyor.webhooks.sender import parse_retry_after
from conveyor.webhooks.signing import (
    WebhookVerificationError,
    check_secret,
    generate_secret,
    sign,
    signature_headers,
)
from conveyor.webhooks.signing import verify as library_verify
from conveyor.webhooks.store import webhook_store
from tests.webhooks.spec_verifier import BadSignature, verify
from tests.webhooks.webhook_support import make_event, webhook_settings

# the standard-webhooks project's own vector (libraries/python/tests/test_webhooks.py)
VECTOR: dict[str, Any] = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": 1614265330, "body": '{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


def _sub(**kw: Any) -> Subscription:
    spec = SubscriptionSpec(url="https://hooks.example/", **{"events": ["job.succeeded"], **kw})
    return new_subscription(spec, sub_id=new_subscription_id(), secret=generate_secret(),
                            created_ms=1_700_000_000_000)


# --- signatures and secrets ---------------------------------------------------------------


def test_sign_matches_the_published_vector() -> None:
    got = sign(VECTOR["secret"], VECTOR["msg_id"], VECTOR["timestamp"], VECTOR["body"])
    assert got == VECTOR["signature"]
    headers = {"webhook-id": VECTOR["msg_id"], "webhook-timestamp": str(VECTOR["timestamp"]),
               "webhook-signature": VECTOR["signature"]}
    verify(str(VECTOR["secret"]), str(VECTOR["body"]).encode(), headers,
           now=float(VECTOR["timestamp"]))  # the spec-text verifier agrees


def test_headers_verify_independently_and_by_the_library() -> None:
    secret = generate_secret()
    body = webhook_body(make_event())
    headers = signature_headers(secret, "msg_abc", body)
    verify(secret, body.encode(), headers)
    assert library_verify(secret, body, headers)["type"] == "job.succeeded"
    with pytest.raises(BadSignature):
        verify(secret, body.encode() + b" ", headers)
    with pytest.raises(BadSignature):
        verify(generate_secret(), body.encode(), headers)
    with pytest.raises(WebhookVerificationError):
        library_verify(secret, body + " ", headers)
    old = signature_headers(secret, "msg_abc", body, timestamp=1_000_000_000)
    with pytest.raises(BadSignature, match="tolerance"):
        verify(secret, body.encode(), old)


def test_secrets_are_whsec_and_32_random_bytes() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[6:], validate=True)) == 32
        assert check_secret(secret) == secret


@pytest.mark.parametrize(
    "bad",
    ["", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_not base64!",
     "whsec_" + base64.b64encode(b"x" * 23).decode(),
     "whsec_" + base64.b64encode(b"x" * 65).decode()],
)
def test_malformed_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_secret(bad)


def test_message_ids_are_stable_per_event_and_dot_free() -> None:
    event = make_event()
    same = JobEvent(**event.model_dump())
    other_queue = JobEvent(**{**event.model_dump(), "queue": "other"})
    assert message_id(event) == message_id(same) != message_id(other_queue)
    assert message_id(event).startswith("msg_") and "." not in message_id(event)
    with pytest.raises(ValueError):
        sign(generate_secret(), "msg.with.dots", 1, "{}")


def test_the_body_is_the_standard_webhooks_envelope_of_the_event() -> None:
    event = make_event(EventName.DEAD, queue="q.1")
    body = json.loads(webhook_body(event))
    stamp = f"2026-01-02T03:04:05.{event.at.microsecond:06d}Z"
    assert body == {"type": "job.dead", "timestamp": stamp,
                    "data": event.as_json()}
    assert set(body["data"]) == {"id", "job_id", "queue", "type", "event", "state", "attempt",
                                 "at", "error_code"}
    progress = {"value": 0.5, "message": "half", "at": "2026-01-02T03:04:05Z"}
    reported = make_event(EventName.PROGRESS, progress=progress)
    assert json.loads(webhook_body(reported))["data"]["progress"] == progress
    assert " " not in webhook_body(event).split('"timestamp"')[0]  # compact JSON


# --- events and subscription requests ------------------------------------------------------


def test_event_names_cover_every_transition() -> None:
    names = ("enqueued", "scheduled", "started", "retrying", "succeeded", "dead", "cancelled",
             "released", "lease_expired", "redriven", "progress")
    assert tuple(f"job.{n}" for n in names) == WEBHOOK_EVENTS
    assert TYPE_NAME_RE.pattern == JOB_TYPE_PATTERN


def test_events_refuse_naive_times_and_bad_fields() -> None:
    good = make_event().model_dump()
    for bad in ({"at": datetime(2026, 1, 1)}, {"queue": "a b"}, {"event": "exploded"},
                {"attempt": -1}, {"id": "has space"}, {"extra": 1}):
        with pytest.raises(pydantic.ValidationError):
            JobEvent(**{**good, **bad})
    plus_two = datetime(2026, 1, 1, 3, tzinfo=timezone(timedelta(hours=2)))
    shifted = JobEvent(**{**good, "at": plus_two})
    assert shifted.at == datetime(2026, 1, 1, 1, tzinfo=UTC)
    assert shifted.at.tzinfo is UTC


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"url": "https://h.example/", "events": []}, "events"),
        ({"url": "https://h.example/", "events": ["job.exploded"]}, "events"),
        ({"url": "https://h.example/", "events": ["succeeded"]}, "events"),
        ({"url": "https://h.example/", "events": ["job.dead"], "queues": []}, "queues"),
        ({"url": "https://h.example/", "events": ["job.dead"], "queues": ["a b"]}, "queues"),
        ({"url": "https://h.example/", "events": ["job.dead"], "types": ["bad type"]}, "types"),
        ({"url": "https://h.example/", "events": ["job.dead"], "types": [WEBHOOK_TYPE]},
         "types"),
        ({"url": "", "events": ["job.dead"]}, "url"),
        ({"url": "https://h.example/", "events": ["job.dead"], "secret": "mine"}, "secret"),
    ],
)
def test_subscription_requests_are_strict(body: dict[str, Any], where: str) -> None:
    with pytest.raises(pydantic.ValidationError) as err:
        SubscriptionSpec.model_validate(body)
    assert err.value.errors()[0]["loc"][0] == where


def test_repeated_names_are_kept_once() -> None:
    spec = SubscriptionSpec(url="https://h.example/", events=["job.dead", "job.dead"],
                            queues=["a", "a"])
    assert spec.events == ["job.dead"] and spec.queues == ["a"]


def test_matches_every_filter_and_never_a_delivery_of_its_own() -> None:
    sub = _sub(events=["job.succeeded", "job.dead"], queues=["reports"], types=["r.build"])
    assert matches(sub, make_event(EventName.DEAD, queue="reports", type="r.build"))
    assert not matches(sub, make_event(EventName.STARTED, queue="reports", type="r.build"))
    assert not matches(sub, make_event(EventName.DEAD, queue="default", type="r.build"))
    assert not matches(sub, make_event(EventName.DEAD, queue="reports", type="other"))
    anything = _sub(events=list(WEBHOOK_EVENTS))
    assert matches(anything, make_event(EventName.PROGRESS, queue="x", type="y"))
    assert not matches(anything, make_event(queue="webhooks", type=WEBHOOK_TYPE))
    off = anything.model_copy(update={"disabled_at": datetime.now(UTC)})
    assert not matches(off, make_event())


def test_deliveries_are_valid_jobs_of_the_registered_type() -> None:
    subs = [_sub(), _sub(), _sub(events=["job.dead"])]
    event = make_event()
    cfg = webhook_settings(webhook_queue="hooks", webhook_max_attempts=7)
    requests = deliveries_for(event, subs, settings=cfg)
    assert [r.payload["subscription_id"] for r in requests] == [subs[0].id, subs[1].id]
    spec = default_registry.get(WEBHOOK_TYPE)
    for req, sub in zip(requests, subs, strict=False):
        assert (req.type, req.queue, req.max_attempts) == (WEBHOOK_TYPE, "hooks", 7)
        assert req.idempotency_key == f"webhook:{sub.id}:{message_id(event)}"
        assert len(req.idempotency_key) <= 256
        stored = spec.validate_payload(req.payload)  # what enqueue checks, strictly
        assert "secret" not in json.dumps(stored)
        assert JobEvent.model_validate(stored["event"]) == event
    assert deliveries_for(event, [], settings=cfg) == []


# --- retry timing --------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now=now) == 0.0
    for junk in (None, "", "soon", "-5", "1.5e9"):
        assert parse_retry_after(junk) is None


def test_the_retry_delay_honours_retry_after_up_to_the_cap() -> None:
    cfg = webhook_settings(webhook_retry_base_s=10, webhook_retry_cap_s=60)
    assert retry_delay_s(1, 30, cfg) == 30
    assert retry_delay_s(1, 3600, cfg) == 60
    for attempt in range(1, 20):
        assert 0 <= retry_delay_s(attempt, None, cfg) <= min(60, 10 * 2 ** (attempt - 1))


async def test_the_cache_rereads_only_when_stale(tmp_path: Path) -> None:
    broker = SqliteBroker(tmp_path / "cache.db")
    await broker.connect()
    try:
        store = webhook_store(broker)
        spec = SubscriptionSpec(url="https://hooks.example/", events=["job.dead"])
        first = await store.create(spec, sub_id=new_subscription_id(), secret=generate_secret())
        now = [0.0]
        cache = SubscriptionCache(store, ttl_s=5, clock=lambda: now[0])
        assert [s.id for s in await cache.get()] == [first.id]
        second = await store.create(spec, sub_id=new_subscription_id(),
                                    secret=generate_secret())
        now[0] = 4.9
        assert [s.id for s in await cache.get()] == [first.id]  # fresh enough
        now[0] = 5.0
        assert {s.id for s in await cache.get()} == {first.id, second.id}
        await store.delete(first.id)
        cache.invalidate()
        assert [s.id for s in await cache.get()] == [second.id]
    finally:
        await broker.close()
