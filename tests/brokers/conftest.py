"""Fixtures of the broker conformance suite: every test runs once per backend in BACKENDS.

To plug in a new backend, add one `Backend` entry to BACKENDS: how to build a connected broker
under an isolation prefix, and how to delete everything stored under that prefix.

`redis-cluster` is the Redis broker on a local 3-primary, 3-replica Redis Cluster (the
session fixture `redis_cluster`, tests/conftest.py); a test marked `backend("redis")` runs on
it too (it is a RedisBroker), and is skipped with the reason when no cluster can be started.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

import conveyor.handlers  # noqa: F401  (registers the built-in `fake` job type)
from conveyor.brokers import broker_from_url
from conveyor.brokers.base import Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from tests.brokers.conformance import BrokerFactory
from tests.support.env import REDIS_URL, new_prefix
from tests.support.keys import delete_prefix

#: Long enough that nothing expires during a test unless the test asks for short retention.
DEFAULT_RETENTION_S = 3600.0
DEFAULT_DLQ_RETENTION_S = 7200.0


@dataclass(frozen=True, slots=True)
class Backend:
    #: builds a connected broker whose data lives under `prefix`
    build: Callable[..., Awaitable[Broker]]
    #: deletes everything stored under `prefix`
    cleanup: Callable[[str], Awaitable[None]]


async def _build_redis(prefix: str, **kw: Any) -> Broker:
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=prefix, **kw)
    await broker.connect()
    return broker


#: the URL of the session's cluster, set by `make_broker` when a test runs on redis-cluster
_CLUSTER_URL: list[str] = []


async def _build_cluster(prefix: str, **kw: Any) -> Broker:
    broker = RedisBroker.from_url(_CLUSTER_URL[0], key_prefix=prefix, **kw)
    await broker.connect()
    return broker


async def _cleanup_redis(prefix: str) -> None:
    await delete_prefix(prefix)


async def _cleanup_cluster(prefix: str) -> None:
    await delete_prefix(prefix, _CLUSTER_URL[0])



def _sqlite_path(prefix: str) -> str:
    directory = os.path.join(tempfile.gettempdir(), "conveyor-tests")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f"{prefix}.db")


async def _build_sqlite(prefix: str, **kw: Any) -> Broker:
    """One file per test: the file is the SQLite broker's namespace (key_prefix is unused)."""
    broker = broker_from_url(f"sqlite:///{_sqlite_path(prefix)}", key_prefix=prefix, **kw)
    await broker.connect()
    return broker


async def _cleanup_sqlite(prefix: str) -> None:
    path = _sqlite_path(prefix)
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


BACKENDS: dict[str, Backend] = {
    "redis": Backend(build=_build_redis, cleanup=_cleanup_redis),
    "sqlite": Backend(build=_build_sqlite, cleanup=_cleanup_sqlite),
    "redis-cluster": Backend(build=_build_cluster, cleanup=_cleanup_cluster),
}
#: a `backend(...)` name that covers another backend too
_ALSO = {"redis-cluster": "redis"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backend(*names): backend-specific test, run only on the named backends"
    )
    config.addinivalue_line(
        "markers", "corrupts_store: damages the store on purpose; skips the teardown audit"
    )


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    marker = request.node.get_closest_marker("backend")
    if marker is not None and name not in marker.args and _ALSO.get(name) not in marker.args:
        pytest.skip(f"specific to backend(s) {', '.join(marker.args)}")
    if name == "redis-cluster":
        _CLUSTER_URL[:] = [request.getfixturevalue("redis_cluster").url]
    return name


@pytest.fixture
async def make_broker(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[BrokerFactory]:
    """Factory of connected brokers; all brokers of one test share one isolation prefix.

    On teardown every queue is audited (invariant 1, unless the test corrupts the store on
    purpose), the brokers are closed and every key under the prefix is deleted.
    """
    spec = BACKENDS[backend]
    prefix = new_prefix()
    made: list[Broker] = []

    async def factory(**kw: Any) -> Broker:
        kw.setdefault("retention_s", DEFAULT_RETENTION_S)
        kw.setdefault("dlq_retention_s", DEFAULT_DLQ_RETENTION_S)
        broker = await spec.build(prefix, **kw)
        made.append(broker)
        return broker

    try:
        yield factory
        if made and request.node.get_closest_marker("corrupts_store") is None:
            for queue in await made[0].queues():
                report = await made[0].audit(queue)
                assert report.ok, f"teardown audit of queue {queue!r} failed: {report}"
    finally:
        for broker in made:
            await broker.close()
        await spec.cleanup(prefix)


@pytest.fixture
async def broker(make_broker: BrokerFactory) -> Broker:
    return await make_broker()


@pytest.fixture
def client(broker: Broker) -> AsyncConveyor:
    """Client for registered types (the built-in `fake`)."""
    return AsyncConveyor(broker)


@pytest.fixture
async def raw_client(broker: Broker) -> AsyncIterator[AsyncConveyor]:
    """Client that accepts any job type, so tests can pick max_attempts freely. Its event
    log followers (waits) stop before the broker closes: a follower left running would
    reopen the closed client."""
    client = AsyncConveyor(broker, validate_types=False)
    yield client
    await client.waiters.close()
