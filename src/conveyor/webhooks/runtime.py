"""What the `conveyor.webhook` handler needs besides its payload: the subscription store
(the secret lives there, never in the job), the sending worker's settings, and for tests a
resolver and TLS trust. A handler gets only (payload, ctx), so this is process-wide.

A process that runs webhook jobs can `configure_webhooks(webhook_store(broker))` with the
broker it already has. Without that, the first delivery opens a broker of its own from
CONVEYOR_BROKER_URL / CONVEYOR_KEY_PREFIX (the worker's settings), once per event loop.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from conveyor.brokers import broker_from_settings
from conveyor.brokers.base import Broker
from conveyor.settings import Settings, get_settings
from conveyor.webhooks.store import WebhookStore, webhook_store
from conveyor.webhooks.urls import Resolver


@dataclass(frozen=True, slots=True)
class WebhookRuntime:
    store: WebhookStore
    settings: Settings
    #: None: the system resolver (getaddrinfo)
    resolver: Resolver | None = None
    #: TLS verification of https endpoints: True (the system's CAs), or a context
    verify: ssl.SSLContext | bool = True


_configured: WebhookRuntime | None = None
_default: tuple[asyncio.AbstractEventLoop, Broker, WebhookRuntime] | None = None


def configure_webhooks(
    store: WebhookStore,
    *,
    settings: Settings | None = None,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Make every `conveyor.webhook` job of this process use `store` (and these settings)."""
    global _configured
    _configured = WebhookRuntime(store, settings or get_settings(), resolver, verify)


def reset_webhooks() -> None:
    """Forget `configure_webhooks` (the default broker, if one was opened, stays)."""
    global _configured
    _configured = None


async def current_runtime() -> WebhookRuntime:
    global _default
    if _configured is not None:
        return _configured
    loop = asyncio.get_running_loop()
    if _default is not None and _default[0] is loop:
        return _default[2]
    settings = get_settings()
    broker = broker_from_settings(settings)
    await broker.connect()
    if _default is not None and _default[0] is loop:  # a concurrent delivery was first
        await broker.close()
        return _default[2]
    _default = (loop, broker, WebhookRuntime(webhook_store(broker), settings))
    return _default[2]


async def close_default_runtime() -> None:
    """Close the broker `current_runtime` opened on this loop, if any."""
    global _default
    if _default is not None and _default[0] is asyncio.get_running_loop():
        broker = _default[1]
        _default = None
        await broker.close()
