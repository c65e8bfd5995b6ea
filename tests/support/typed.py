"""Narrowing for values the tests read whose static type is wider than what they hold (a
job's JSON payload or result), and redis-py's untyped `execute_command`."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


def as_dict(value: object) -> dict[str, Any]:
    """`value`, checked to be a JSON object (a dict)."""
    assert isinstance(value, dict), value
    return value


async def redis_command(client: Redis, *args: str | int) -> Any:
    """`client.execute_command(*args)`: redis-py leaves it untyped."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]
