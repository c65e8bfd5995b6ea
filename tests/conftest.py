"""Fixtures shared by every test folder: the local Redis Cluster (see cluster_support.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from cluster_support import LocalCluster, start, stop, unavailable_reason


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
