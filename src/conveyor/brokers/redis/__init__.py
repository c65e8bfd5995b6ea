"""The Redis broker: production backend, one Lua script per state transition."""

from conveyor.brokers.redis.broker import RedisBroker

__all__ = ["RedisBroker"]
