"""`cv.webhooks`: webhook subscriptions from Python, `AsyncWebhooks` on `AsyncConveyor` and
its synchronous twin `Webhooks` on `Conveyor`.

The same store and checks as `POST /v1/webhooks`: the URL is checked (spelling, DNS, every
address) before anything is stored. `create` returns the `Subscription` with its secret
(`sub.secret.get_secret_value()`, or `sub.created()`): the one time it is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic

from conveyor.errors import ValidationError, WebhookNotFound
from conveyor.settings import Settings
from conveyor.webhooks.model import Subscription, SubscriptionSpec
from conveyor.webhooks.store import WebhookStore, subscribe, webhook_store

if TYPE_CHECKING:
    from conveyor.brokers.base import Broker

T = TypeVar("T")


def spec_of(
    url: str, events: Sequence[str], queues: Sequence[str] | None = None,
    types: Sequence[str] | None = None,
) -> SubscriptionSpec:
    """A checked request; `ValidationError` with per-field details otherwise."""
    try:
        return SubscriptionSpec(
            url=url, events=list(events), queues=None if queues is None else list(queues),
            types=None if types is None else list(types),
        )
    except pydantic.ValidationError as exc:
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                   for e in exc.errors(include_url=False)]
        raise ValidationError("invalid webhook subscription", details=details) from None


def _not_found(sub_id: str) -> WebhookNotFound:
    return WebhookNotFound(f"no webhook subscription {sub_id[:64]}",
                           details={"id": sub_id[:64]})


class AsyncWebhooks:
    """Subscriptions kept next to `broker`'s jobs. `settings` (default: the environment's)
    says whether private addresses are allowed and how long DNS may take."""

    def __init__(self, broker: Broker, settings: Settings | None = None) -> None:
        self._broker = broker
        self._settings = settings
        self._store: WebhookStore | None = None

    @property
    def store(self) -> WebhookStore:
        if self._store is None:
            self._store = webhook_store(self._broker)
        return self._store

    async def create(
        self, url: str, events: Sequence[str], *, queues: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
    ) -> Subscription:
        return await subscribe(self.store, spec_of(url, events, queues, types),
                               settings=self._settings)

    async def list(self) -> list[Subscription]:
        return await self.store.list()

    async def get(self, sub_id: str) -> Subscription:
        sub = await self.store.get(sub_id)
        if sub is None:
            raise _not_found(sub_id)
        return sub

    async def delete(self, sub_id: str) -> None:
        if not await self.store.delete(sub_id):
            raise _not_found(sub_id)


class Webhooks:
    """`AsyncWebhooks` driven by the synchronous client's `call` (its event-loop thread)."""

    def __init__(
        self, inner: AsyncWebhooks, call: Callable[[Coroutine[Any, Any, Any]], Any]
    ) -> None:
        self._inner = inner
        self._call = call

    def create(
        self, url: str, events: Sequence[str], *, queues: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
    ) -> Subscription:
        sub: Subscription = self._call(
            self._inner.create(url, events, queues=queues, types=types))
        return sub

    def list(self) -> list[Subscription]:
        subs: list[Subscription] = self._call(self._inner.list())
        return subs

    def get(self, sub_id: str) -> Subscription:
        sub: Subscription = self._call(self._inner.get(sub_id))
        return sub

    def delete(self, sub_id: str) -> None:
        self._call(self._inner.delete(sub_id))
