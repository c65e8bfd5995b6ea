"""Flow control through the Python clients, sync and async: limits by model or by dict,
`limit_key=` checked before anything is sent, the busiest keys and the counts."""

from __future__ import annotations

import pytest

from conveyor.client import AsyncConveyor, Conveyor
from conveyor.errors import ValidationError
from conveyor.flow import QueueLimits, Rate


def test_sync_client_limits_and_keys(client: Conveyor) -> None:
    spec = client.set_limits("q", {"key_concurrency": 1, "key_rate": {"count": 5}})
    assert spec == QueueLimits(key_concurrency=1, key_rate=Rate(count=5))
    assert client.get_limits("q") == spec
    for _ in range(3):
        assert client.enqueue("fake", {}, queue="q", limit_key="acme").limit_key == "acme"
    with pytest.raises(ValidationError):
        client.enqueue("fake", {}, queue="q", limit_key="x" * 129)
    with pytest.raises(ValidationError):
        client.set_limits("q", {"concurrency": 0})
    assert client.get_limits("q") == spec  # nothing changed
    assert client.delete_limits("q") is True
    assert client.get_limits("q") is None
    assert client.limited_counts(["q"]) == {"q": 0}
    with pytest.raises(ValidationError):
        client.limit_keys("q", 0)


async def test_async_client_keys_and_counts(aclient: AsyncConveyor) -> None:
    await aclient.set_limits("q", QueueLimits(key_concurrency=1))
    for key in ("a", "a", "b"):
        await aclient.enqueue("fake", {}, queue="q", limit_key=key)
    assert len((await aclient.broker.fetch("q", 10, "w", 60_000)).deliveries) == 2
    keys = await aclient.limit_keys("q")
    assert [(k.key, k.backlog, k.running, k.held) for k in keys] == [("a", 1, 1, True)]
    assert await aclient.limited_counts(["q"]) == {"q": 1}
    assert (await aclient.held_counts(["q"]))["q"].get("key_concurrency", 0) >= 1
