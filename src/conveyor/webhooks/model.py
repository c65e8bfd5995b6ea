"""Webhook subscriptions: what `POST /v1/webhooks` takes (`SubscriptionSpec`), what is stored
(`Subscription`, with its secret), the flat record both stores keep, and `matches`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from conveyor.errors import CorruptRecord, ValidationError
from conveyor.events.model import JOB_TYPE_PATTERN, EventName, JobEvent
from conveyor.queues import QUEUE_NAME_RE
from conveyor.timeutil import datetime_to_ms
from conveyor.webhooks.signing import check_secret

#: the job type of a delivery; events of this type are never delivered (a delivery's own
#: events would fan out into deliveries of deliveries, without end)
WEBHOOK_TYPE = "conveyor.webhook"
EVENT_PREFIX = "job."
#: every event name a subscription may ask for: `job.<transition>`
WEBHOOK_EVENTS: tuple[str, ...] = tuple(EVENT_PREFIX + str(e) for e in EventName)
SUBSCRIPTION_ID_PATTERN = r"^wh_[0-9a-f]{32}$"
MAX_FILTERS = 100
MAX_URL_LENGTH = 2048
MAX_REASON_LENGTH = 500
#: a bound on the registry, so a listing (and the fan-out over it) stays one bounded read
MAX_SUBSCRIPTIONS = 1000
_TYPE_RE = re.compile(JOB_TYPE_PATTERN)
_ID_RE = re.compile(SUBSCRIPTION_ID_PATTERN)
_FILTER_RULES = {
    "queues": (QUEUE_NAME_RE, "a queue name is 1-64 of A-Z a-z 0-9 _ . -"),
    "types": (_TYPE_RE, "a job type is 1-128 of A-Z a-z 0-9 _ . : -"),
}


def webhook_event_name(event: EventName | str) -> str:
    """`succeeded` -> `job.succeeded`: the name subscriptions and the `type` field use."""
    return EVENT_PREFIX + str(event)


def message_id(event: JobEvent) -> str:
    """The `webhook-id` of an event: the same for every attempt and every subscription, so
    a receiver can drop a duplicate; no `.` (the separator of the signed content)."""
    digest = hashlib.sha256(f"{event.queue}\n{event.id}".encode()).hexdigest()
    return "msg_" + digest[:32]


def webhook_body(event: JobEvent) -> str:
    """The POST body, in the Standard Webhooks shape `{"type", "timestamp", "data"}`: `data`
    is the event JSON, `type` its `job.<event>` name, `timestamp` when it happened."""
    data = event.as_json()
    return json.dumps(
        {"type": webhook_event_name(event.event), "timestamp": data["at"], "data": data},
        separators=(",", ":"),
    )


def new_subscription_id() -> str:
    return "wh_" + secrets.token_hex(16)


def is_subscription_id(value: object) -> bool:
    """Stores look up only well-formed ids: anything else is simply not found."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class SubscriptionSpec(BaseModel):
    """`{"url", "events", "queues"?, "types"?}`. The URL's spelling and addresses are checked
    by `subscribe` (they need DNS and the allow-private setting), not by this model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    events: list[str] = Field(min_length=1, max_length=len(WEBHOOK_EVENTS))
    #: None: every queue; else only events of these queues
    queues: list[str] | None = Field(default=None, min_length=1, max_length=MAX_FILTERS)
    #: None: every job type; else only events of jobs of these types
    types: list[str] | None = Field(default=None, min_length=1, max_length=MAX_FILTERS)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in WEBHOOK_EVENTS]
        if unknown:
            raise ValueError(
                f"unknown event name(s) {', '.join(map(repr, unknown))}: "
                f"expected some of {', '.join(WEBHOOK_EVENTS)}"
            )
        return _unique(value)

    @field_validator("queues", "types")
    @classmethod
    def _names(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        rule, spelling = _FILTER_RULES[str(info.field_name)]
        for name in value:
            if not rule.fullmatch(name):
                raise ValueError(f"invalid name {name!r}: {spelling}")
            if info.field_name == "types" and name == WEBHOOK_TYPE:
                raise ValueError(f"events of {WEBHOOK_TYPE!r} jobs (deliveries) are never "
                                 "delivered")
        return _unique(value)


class Subscription(BaseModel):
    """A stored subscription. `secret` signs its deliveries: shown once, at creation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=SUBSCRIPTION_ID_PATTERN)
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    events: list[str]
    queues: list[str] | None = None
    types: list[str] | None = None
    secret: SecretStr
    created_at: datetime
    #: set when the endpoint answered 410 Gone: no more deliveries (pending ones are skipped)
    disabled_at: datetime | None = None
    disabled_reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)

    @field_validator("secret")
    @classmethod
    def _secret_format(cls, value: SecretStr) -> SecretStr:
        check_secret(value.get_secret_value())
        return value

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def public(self) -> dict[str, Any]:
        """The JSON of listings: everything but the secret."""
        return self.model_dump(mode="json", exclude={"secret"})

    def created(self) -> dict[str, Any]:
        """The JSON of the creation answer, the only one that shows the secret."""
        return {**self.public(), "secret": self.secret.get_secret_value()}


def matches(subscription: Subscription, event: JobEvent) -> bool:
    """Whether `event` is delivered to `subscription`: enabled, its event name asked for, its
    queue and type within the filters, and not an event of a delivery job itself."""
    return (
        subscription.enabled
        and event.type != WEBHOOK_TYPE
        and webhook_event_name(event.event) in subscription.events
        and (subscription.queues is None or event.queue in subscription.queues)
        and (subscription.types is None or event.type in subscription.types)
    )


def new_subscription(
    spec: SubscriptionSpec, *, sub_id: str, secret: str, created_ms: int
) -> Subscription:
    """What a store keeps for a new subscription (its clock gives `created_ms`)."""
    return Subscription(
        id=sub_id, url=spec.url, events=spec.events, queues=spec.queues, types=spec.types,
        secret=SecretStr(secret), created_at=_at(created_ms),
    )


def limit_reached(count: int) -> ValidationError | None:
    """The error of a store that already holds MAX_SUBSCRIPTIONS (None below it)."""
    if count < MAX_SUBSCRIPTIONS:
        return None
    msg = f"at most {MAX_SUBSCRIPTIONS} webhook subscriptions: delete one first"
    return ValidationError(msg, details=[{"loc": [], "msg": msg, "type": "webhook_limit",
                                          "reason": "limit"}])


# --- the flat record both stores keep (a Redis hash; a SQLite JSON column) -------------------

RECORD_FIELDS = ("url", "events", "queues", "types", "secret", "created_ms", "disabled_ms",
                 "disabled_reason")


def to_record(sub: Subscription) -> dict[str, str]:
    """Every value a string: a Redis hash as it is, the same dict in SQLite."""
    return {
        "url": sub.url,
        "events": json.dumps(sub.events),
        "queues": json.dumps(sub.queues),
        "types": json.dumps(sub.types),
        "secret": sub.secret.get_secret_value(),
        "created_ms": str(datetime_to_ms(sub.created_at)),
        "disabled_ms": "" if sub.disabled_at is None else str(datetime_to_ms(sub.disabled_at)),
        "disabled_reason": sub.disabled_reason or "",
    }


def from_record(sub_id: str, record: Mapping[str, Any]) -> Subscription:
    """Read a record back, checking every field; CorruptRecord when it does not parse."""
    try:
        missing = [f for f in RECORD_FIELDS if not isinstance(record.get(f), str)]
        if missing:
            raise ValueError(f"missing or non-text field(s) {', '.join(missing)}")
        disabled = record["disabled_ms"]
        return Subscription.model_validate({
            "id": sub_id,
            "url": record["url"],
            "events": _json_list(record["events"], allow_none=False),
            "queues": _json_list(record["queues"]),
            "types": _json_list(record["types"]),
            "secret": record["secret"],
            "created_at": _at(int(record["created_ms"])),
            "disabled_at": _at(int(disabled)) if disabled else None,
            "disabled_reason": record["disabled_reason"] or None,
        })
    except (ValueError, TypeError, OverflowError, pydantic.ValidationError) as exc:
        raise CorruptRecord(
            f"webhook subscription {sub_id[:64]!r} does not parse: {str(exc)[:300]}",
            details={"subscription_id": sub_id[:64]},
        ) from None


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _json_list(text: str, *, allow_none: bool = True) -> list[str] | None:
    value = json.loads(text)
    if value is None and allow_none:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a JSON list of strings")
    return value


class WebhookPayload(BaseModel):
    """The payload of a `conveyor.webhook` job, `{"subscription_id", "event"}`: which
    subscription, which event (never its secret: payloads are shown)."""

    model_config = ConfigDict(extra="forbid")

    subscription_id: str = Field(pattern=SUBSCRIPTION_ID_PATTERN)
    event: JobEvent
