"""Job handlers: the registry, the `@handler` decorator and the built-in types (`fake`,
`email.send`, `conveyor.webhook`)."""

# Imported for its side effect: the built-in `fake` type is always registered.
from conveyor.handlers import email as email
from conveyor.handlers import fake as fake
from conveyor.handlers.context import JobContext
from conveyor.handlers.registry import (
    HandlerSpec,
    Registry,
    default_registry,
    handler,
    load_app,
    queue_limits,
)
from conveyor.webhooks import handler as webhook

__all__ = [
    "HandlerSpec",
    "JobContext",
    "Registry",
    "default_registry",
    "fake",
    "handler",
    "load_app",
    "queue_limits",
    "webhook",
]
