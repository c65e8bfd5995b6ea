"""Request and response models of `/v1/webhooks`: the JSON contract and its named schemas.

`WebhookIn` is `SubscriptionSpec` (its validators run) with the field types spelled out for
the document: the event names as an enum, queue and type names with their patterns. What
the document cannot say (that the URL's host resolves to addresses a webhook may use) is
checked by `subscribe`, and refused as 422 with `details[0].reason`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from conveyor.api.schemas import QUEUE_PATTERN, TYPE_PATTERN, ResponseModel
from conveyor.webhooks.model import (
    MAX_FILTERS,
    MAX_REASON_LENGTH,
    MAX_URL_LENGTH,
    SUBSCRIPTION_ID_PATTERN,
    WEBHOOK_EVENTS,
    WEBHOOK_TYPE,
    Subscription,
    SubscriptionSpec,
)

#: the event names, as the document's enum (kept equal to WEBHOOK_EVENTS by a test)
WebhookEvent = Literal[
    "job.enqueued", "job.scheduled", "job.started", "job.retrying", "job.succeeded",
    "job.dead", "job.cancelled", "job.released", "job.lease_expired", "job.redriven",
    "job.progress",
]
_TYPE_SCHEMA: dict[str, Any] = {"not": {"const": WEBHOOK_TYPE}}

QueueFilter = Annotated[str, Field(pattern=QUEUE_PATTERN)]
TypeFilter = Annotated[str, Field(pattern=TYPE_PATTERN, json_schema_extra=_TYPE_SCHEMA)]


class WebhookIn(SubscriptionSpec):
    """A subscription to create: where to POST, which events, optionally which queues and
    job types (none: all). Private, loopback and link-local addresses are refused unless
    the server sets `CONVEYOR_WEBHOOK_ALLOW_PRIVATE=true`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH,
                     json_schema_extra={"format": "uri"},
                     description="http(s), a host whose every address a webhook may use")
    events: list[WebhookEvent] = Field(  # type: ignore[assignment]
        min_length=1, max_length=len(WEBHOOK_EVENTS), examples=[["job.succeeded", "job.dead"]])
    queues: list[QueueFilter] | None = Field(default=None, min_length=1, max_length=MAX_FILTERS)
    types: list[TypeFilter] | None = Field(default=None, min_length=1, max_length=MAX_FILTERS)

    def spec(self) -> SubscriptionSpec:
        return SubscriptionSpec.model_validate(self.model_dump())


class WebhookOut(ResponseModel):
    """A subscription as listings show it: never its secret."""

    id: str = Field(pattern=SUBSCRIPTION_ID_PATTERN)
    url: str
    events: list[str]
    queues: list[str] | None
    types: list[str] | None
    created_at: datetime
    disabled_at: datetime | None = Field(
        description="set when the endpoint answered 410 Gone: no more deliveries")
    disabled_reason: str | None = Field(max_length=MAX_REASON_LENGTH)

    @classmethod
    def of(cls, sub: Subscription) -> WebhookOut:
        return cls.model_validate(sub.public())


class WebhookCreated(WebhookOut):
    """The answer to a creation: the only one that shows the secret."""

    secret: str = Field(pattern=r"^whsec_", description="signs every delivery (Standard "
                        "Webhooks `whsec_` key): store it now, it is never shown again")

    @classmethod
    def of(cls, sub: Subscription) -> WebhookCreated:
        return cls.model_validate(sub.created())


class WebhookList(ResponseModel):
    items: list[WebhookOut]
