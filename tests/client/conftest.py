"""Client fixtures: a real Redis under the test's key prefix (the root conftest's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import conveyor.handlers  # noqa: F401  (registers the built-in `fake` job type)
from conveyor.client import AsyncConveyor, Conveyor
from tests.support.env import REDIS_URL


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
