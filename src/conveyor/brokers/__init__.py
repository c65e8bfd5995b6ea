"""Brokers: where jobs live. `broker_from_url` picks the backend from the URL scheme;
`broker_from_settings` is the one place a process turns its `CONVEYOR_*` settings into one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.brokers.base import Broker, SyncEnqueuer
from conveyor.errors import ValidationError

if TYPE_CHECKING:
    from conveyor.settings import Settings


def broker_from_url(
    url: str, *, key_prefix: str = "cv", redis_timeout_s: float | None = None,
    redis_check_interval_s: float | None = None, redis_wait_replicas: int | None = None,
    redis_wait_timeout_ms: int | None = None, **kw: Any,
) -> Broker:
    """`redis_*` options apply to Redis only (None: the broker's default)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}:
        from conveyor.brokers.redis import RedisBroker

        if redis_timeout_s is not None:
            kw["timeout_s"] = redis_timeout_s
        if redis_check_interval_s is not None:
            kw["policy_check_s"] = redis_check_interval_s
        if redis_wait_replicas is not None:
            kw["wait_replicas"] = redis_wait_replicas
        if redis_wait_timeout_ms is not None:
            kw["wait_timeout_ms"] = redis_wait_timeout_ms
        return RedisBroker.from_url(url, key_prefix=key_prefix, **kw)
    if scheme == "sqlite":
        from conveyor.brokers.sqlite import SqliteBroker

        return SqliteBroker.from_url(url, key_prefix=key_prefix, **kw)
    raise ValidationError(
        f"unsupported broker URL {url!r}: expected redis://, rediss://, unix://,"
        " redis+cluster://, rediss+cluster:// or sqlite:///",
        details={"field": "broker_url"},
    )


def broker_from_settings(settings: Settings) -> Broker:
    """The broker `settings` name (URL, key prefix, retention, Redis timeouts and replica
    waits, event-log bound), not connected yet."""
    return broker_from_url(
        settings.broker_url, key_prefix=settings.key_prefix,
        retention_s=settings.retention_s, dlq_retention_s=settings.dlq_retention_s,
        queue_retention_s=dict(settings.queue_retention_s),
        redis_timeout_s=settings.redis_timeout_s,
        redis_check_interval_s=settings.redis_check_interval_s,
        redis_wait_replicas=settings.redis_wait_replicas,
        redis_wait_timeout_ms=settings.redis_wait_timeout_ms,
        events_maxlen=settings.events_maxlen,
    )


__all__ = ["Broker", "SyncEnqueuer", "broker_from_settings", "broker_from_url"]
