"""Failover on a Redis Cluster of the test's own (issue 14): a primary SIGKILLed, a primary
demoted by a manual failover. While a slot has no primary every call on it is
`BrokerUnavailable` (the API's 503) and readiness says not ready; afterwards the broker
follows MOVED to the promoted replica, reloads its scripts there (NOSCRIPT) and goes on, and
a write confirmed by `wait_replicas=1` is still there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from redis.asyncio.cluster import RedisCluster

from conveyor.brokers.base import AckItem
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.errors import BrokerUnavailable
from conveyor.jobs import JobState
from tests.support.cluster import (
    LocalCluster,
    allow_failover,
    kill_primary_of,
    queues_on_each_primary,
    replica_of,
)
from tests.support.env import new_prefix
from tests.support.typed import redis_command

T = TypeVar("T")
#: a failover with cluster-node-timeout 1000 ms takes a few seconds; this bounds the wait
RECOVER_S = 30.0


@pytest.fixture
async def broker(own_cluster: LocalCluster) -> AsyncIterator[RedisBroker]:
    b = RedisBroker.from_url(own_cluster.url, key_prefix=new_prefix(),
                             timeout_s=0.5, wait_replicas=1, wait_timeout_ms=2000)
    await b.connect()
    try:
        yield b
    finally:
        await b.close()


def _spread(broker: RedisBroker) -> list[str]:
    assert isinstance(broker.client, RedisCluster)
    owner = {s: n[0].name for s, n in broker.client.nodes_manager.slots_cache.items()}
    return queues_on_each_primary(owner, "fo")


async def _until_ok(what: str, call: Callable[[], Awaitable[T]]) -> tuple[T, list[str]]:
    """Call until it succeeds; every failure meanwhile must be BrokerUnavailable."""
    seen: list[str] = []
    deadline = time.monotonic() + RECOVER_S
    while True:
        try:
            return await call(), seen
        except BrokerUnavailable as exc:
            seen.append(exc.message)
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still unavailable after {RECOVER_S}s") from exc
            await asyncio.sleep(0.2)


async def test_a_killed_primary_is_ridden_out_with_confirmed_writes_kept(
    own_cluster: LocalCluster, broker: RedisBroker,
) -> None:
    q, other, _ = _spread(broker)
    client = AsyncConveyor(broker, validate_types=False)
    stored = await client.enqueue_many([JobRequest(type="t", queue=q) for _ in range(5)])
    replica = await kill_primary_of(own_cluster, broker, q)
    # while the slot has no primary: unavailable, never another error; not ready
    for _ in range(3):
        with pytest.raises(BrokerUnavailable):
            await broker.check_ready()
        with pytest.raises(BrokerUnavailable):
            await broker.fetch(q, 1, "w", 30_000)
    await allow_failover(replica)

    # the replica is promoted: the same broker goes on (MOVED followed, scripts reloaded)
    batch, _ = await _until_ok("fetch", lambda: broker.fetch(q, 10, "w", 30_000))
    assert sorted(d.job_id for d in batch.deliveries) == sorted(r.job_id for r in stored)
    # the promoted primary has no replica left: WAIT 1 cannot be confirmed there, and the
    # ack says so instead of claiming a write a second failover could lose
    with pytest.raises(BrokerUnavailable) as err:
        await broker.ack([AckItem(d.job_id, d.token, "1") for d in batch.deliveries])
    assert err.value.details["replicas_confirmed"] == 0
    # sent again (what a worker does): same token, so the same outcome, no second transition
    plain = RedisBroker.from_url(own_cluster.url, key_prefix=broker.keys.prefix)
    try:
        await _until_ok("connect", plain.connect)
        acks = await plain.ack([AckItem(d.job_id, d.token, "1") for d in batch.deliveries])
        assert acks == [True] * 5
        await _until_ok("ready", plain.check_ready)
        stats = await plain.stats([q, other])
        assert stats[q]["succeeded"] == 5
        await client.enqueue_many([JobRequest(type="t", queue=other)])  # replicated: fine
        assert (await plain.audit(q)).ok
    finally:
        await plain.close()


async def test_a_manual_failover_unblocks_a_waiting_worker_as_a_transient_error(
    own_cluster: LocalCluster, broker: RedisBroker,
) -> None:
    q, _, _ = _spread(broker)
    assert isinstance(broker.client, RedisCluster)
    primary = broker.client.get_node_from_key(broker.keys.queue(q).queued)
    assert primary is not None
    replica = await replica_of(own_cluster, primary.port)
    waiting = asyncio.create_task(broker.wait_for_work([q], 4.0))
    await asyncio.sleep(0.3)
    try:
        assert await redis_command(replica, "CLUSTER FAILOVER") is True
    finally:
        await replica.aclose()
    outcome: Any
    try:
        outcome = await waiting
    except BrokerUnavailable as exc:  # "UNBLOCKED force unblock ..." or a dropped link
        outcome = exc
    assert outcome in (True, False) or isinstance(outcome, BrokerUnavailable)

    # the old primary is a replica now: writes go to the new one, never to it
    # one job, sent again with its own id until confirmed (an unconfirmed try may have landed)
    spec = AsyncConveyor(broker, validate_types=False).build_spec(
        JobRequest(type="t", queue=q))[0]
    (res,), _ = await _until_ok("enqueue", lambda: broker.enqueue([spec]))
    role = await broker.client.execute_command("ROLE", target_nodes=primary)
    assert role[0] == "slave"
    job = await broker.get(res.job_id)
    assert job.state == JobState.QUEUED
    batch, _ = await _until_ok("fetch", lambda: broker.fetch(q, 1, "w", 30_000))
    assert [d.job_id for d in batch.deliveries] == [res.job_id]
