"""Fixtures shared by every test folder: a key prefix of the test's own on the shared Redis
(its keys deleted after the test) and the local Redis Cluster (support/cluster.py).
Helpers every folder uses live in the `support` package next to this file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.support.cluster import LocalCluster, start, stop, unavailable_reason
from tests.support.env import new_prefix
from tests.support.keys import delete_prefix_sync

#: the per-test timeout of real-process scenarios (pyproject's `timeout` is everyone else's)
LONG_TIMEOUT_S = 300
LONG_MARKERS = ("e2e", "chaos")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `e2e` / `chaos`, or in tests/chaos, get LONG_TIMEOUT_S unless they set
    their own `timeout`."""
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        if "chaos" in item.path.parts or any(item.get_closest_marker(m) for m in LONG_MARKERS):
            item.add_marker(pytest.mark.timeout(LONG_TIMEOUT_S))


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix no other test uses; every key under it on the shared Redis is deleted
    after the test."""
    name = new_prefix()
    try:
        yield name
    finally:
        delete_prefix_sync(name)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """One cluster for the whole session, started on first use, stopped at the end."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"no Redis Cluster: {reason}")
    cluster = start()
    try:
        yield cluster
    finally:
        stop(cluster)


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A cluster only this test uses (it kills nodes): needs redis-server on PATH."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server to start a Redis Cluster of its own")
    cluster = start(own=True)
    try:
        yield cluster
    finally:
        stop(cluster)
