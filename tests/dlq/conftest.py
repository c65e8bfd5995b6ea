"""Fixtures of the DLQ tests: each test runs once per backend (Redis under its own key
prefix, SQLite in its own file), with a private handler registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conveyor.brokers import broker_from_url
from conveyor.brokers.base import Broker
from conveyor.client import AsyncConveyor
from conveyor.handlers import Registry
from tests.support.env import REDIS_URL


@pytest.fixture(params=["redis", "sqlite"])
async def broker(
    request: pytest.FixtureRequest, tmp_path: Path, prefix: str
) -> AsyncIterator[Broker]:
    url = REDIS_URL if request.param == "redis" else f"sqlite:///{tmp_path / 'dlq.db'}"
    b = broker_from_url(url, key_prefix=prefix)
    await b.connect()
    try:
        yield b
        for queue in await b.queues():
            report = await b.audit(queue)
            assert report.ok, f"teardown audit of {queue!r} failed: {report}"
    finally:
        await b.close()  # the root `prefix` fixture deletes the keys


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def client(broker: Broker) -> AsyncConveyor:
    """Accepts any job type, so tests pick types and max_attempts freely."""
    return AsyncConveyor(broker, validate_types=False)
