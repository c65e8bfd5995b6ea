"""Client fixtures: a real Redis under a unique key prefix, deleted afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

import conveyor.handlers  # noqa: F401  (registers the built-in `fake` job type)
from conveyor.client import AsyncConveyor, Conveyor

REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _delete_prefix(prefix: str) -> None:
    r = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            r.delete(*keys)
    finally:
        r.close()


@pytest.fixture
def prefix() -> Iterator[str]:
    p = f"cvt-{uuid.uuid4().hex[:8]}"
    yield p
    _delete_prefix(p)


@pytest.fixture
async def aclient(prefix: str) -> AsyncIterator[AsyncConveyor]:
    c = AsyncConveyor.from_url(REDIS_URL, key_prefix=prefix)
    await c.connect()
    yield c
    await c.close()


@pytest.fixture
def client(prefix: str) -> Iterator[Conveyor]:
    c = Conveyor.from_url(REDIS_URL, key_prefix=prefix)
    yield c
    c.close()
