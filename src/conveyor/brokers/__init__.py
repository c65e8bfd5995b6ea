"""Brokers: where jobs live. `from_url` picks the backend from the URL scheme."""

from __future__ import annotations

from typing import Any

from conveyor.brokers.base import Broker
from conveyor.errors import ValidationError


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


__all__ = ["Broker", "broker_from_url"]
