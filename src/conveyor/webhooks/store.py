"""Where subscriptions live: the `WebhookStore` protocol, its implementation for a broker
(Redis or SQLite, in the broker packages), and `subscribe`, which checks a request and
stores it with a fresh id and secret.

The secret is stored with the subscription (an HMAC needs the key itself, so it cannot be
hashed) and never travels in a job: a delivery's payload names the subscription and the
handler reads the secret here, so the API and the dashboard, which show payloads, never
show a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from conveyor.settings import Settings, get_settings
from conveyor.webhooks.model import Subscription, SubscriptionSpec, new_subscription_id
from conveyor.webhooks.signing import generate_secret
from conveyor.webhooks.urls import Resolver, validate_webhook_url

if TYPE_CHECKING:
    from conveyor.brokers.base import Broker


class WebhookStore(Protocol):
    """Subscription storage. Ids that are not subscription ids are simply not found."""

    async def create(self, spec: SubscriptionSpec, *, sub_id: str, secret: str) -> Subscription:
        """Store a new subscription, stamped with the broker's clock; `ValidationError`
        (details reason `limit`) past MAX_SUBSCRIPTIONS."""
        ...

    async def get(self, sub_id: str) -> Subscription | None:
        """The subscription, or None; `CorruptRecord` if its record does not parse."""
        ...

    async def list(self) -> list[Subscription]:
        """Every subscription, oldest first; records that do not parse are logged, skipped."""
        ...

    async def delete(self, sub_id: str) -> bool:
        """Remove it; False if there was none."""
        ...

    async def disable(self, sub_id: str, reason: str) -> bool:
        """Mark it disabled (first reason wins); False if there is none."""
        ...


def webhook_store(broker: Broker) -> WebhookStore:
    """The store that keeps subscriptions next to `broker`'s jobs: the backend's own
    (`webhook_store()`, an optional capability; this layer names no backend)."""
    make = getattr(broker, "webhook_store", None)
    if make is None:
        raise TypeError(f"no webhook store for {type(broker).__name__}")
    store: WebhookStore = make()
    return store


async def subscribe(
    store: WebhookStore,
    spec: SubscriptionSpec,
    *,
    settings: Settings | None = None,
    resolver: Resolver | None = None,
) -> Subscription:
    """Check the URL (spelling, DNS, every address: `WebhookUrlError`, a ValidationError,
    with details reason) and store the subscription with a new id and secret. The answer is
    the one place the secret is shown (`Subscription.created()`)."""
    cfg = settings or get_settings()
    target = await validate_webhook_url(
        spec.url, allow_private=cfg.webhook_allow_private, resolver=resolver,
        timeout_s=cfg.webhook_timeout_s,
    )
    checked = spec.model_copy(update={"url": target.url})
    return await store.create(checked, sub_id=new_subscription_id(), secret=generate_secret())
