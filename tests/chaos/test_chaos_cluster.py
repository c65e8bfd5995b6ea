"""Fault suite on a Redis Cluster of the test's own (issue 14), with the ledger and the
reconciliation: SIGKILL the primary that serves the loaded queue while 3 workers run it; its
replica is promoted; then the old primary rejoins, as a replica, and nothing keeps talking to
it as a primary.

With `CONVEYOR_REDIS_WAIT_REPLICAS=1` (producer and workers) no acknowledged enqueue and no
acknowledged outcome may be lost, no stale ack accepted, every duplicate explained. With 0
(the control) replication is asynchronous: the reconciliation reports what the failover lost
(possibly nothing, if the replica had caught up).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from tests.chaos.chaos_support import QUEUE, Figures, Scale, Workers, WorkerSpec, wait_drained
from tests.chaos.ledger import Ledger
from tests.chaos.reconcile import reconcile
from tests.chaos.test_chaos_redis import Producer
from tests.support.cluster import (
    LocalCluster,
    allow_failover,
    kill_primary_of,
    pid_of,
    restart_node,
)
from tests.support.typed import redis_command


@pytest.mark.parametrize("wait_replicas", [1, 0])
async def test_a_killed_primary_under_load_loses_no_acknowledged_write_with_wait(
    wait_replicas: int, scale: Scale, own_cluster: LocalCluster, workers: Workers,
    prefix: str, ledger: Ledger, figures: Figures,
) -> None:
    rng = random.Random(14)
    before, after = scale.of((150, 100), (2000, 2000))
    extra = (("CONVEYOR_REDIS_WAIT_REPLICAS", str(wait_replicas)),
             ("CONVEYOR_REDIS_WAIT_TIMEOUT_MS", "2000"))
    spec = WorkerSpec(broker_url=own_cluster.url, prefix=prefix, ledger=ledger.path,
                      concurrency=4, lease_s=3.0, extra_env=extra)
    broker = RedisBroker.from_url(own_cluster.url, key_prefix=prefix,
                                  wait_replicas=wait_replicas, wait_timeout_ms=2000)
    await broker.connect()
    client = AsyncConveyor(broker, validate_types=False)
    try:
        assert isinstance(broker.client, RedisCluster)
        victim = broker.client.get_node_from_key(broker.keys.queue(QUEUE).queued)
        assert victim is not None
        await asyncio.gather(*(workers.start(spec) for _ in range(3)))
        started = time.monotonic()
        producer = Producer(client, rng)
        producer.start()
        try:
            await producer.wait_accepted(before, timeout_s=90.0)
            held: Redis | None = None
            if wait_replicas:
                os.kill(pid_of(own_cluster, victim.port), signal.SIGKILL)
            else:
                # Asynchronous replication: a lone enqueue is one EVALSHA, which redis-py's
                # cluster retry (10 tries, backoff up to 1 s) may carry across the whole
                # failover (1 s node timeout), so the producer need not see the outage at
                # all. The replica is held back from taking over until it has: enqueues
                # sent while the slot has no primary must be refused, never acknowledged.
                held = await kill_primary_of(own_cluster, broker, QUEUE)
            killed_at = time.time()
            try:
                await producer.wait_failed(len(producer.failed) + 1, timeout_s=30.0)
            finally:
                if held is not None:
                    await allow_failover(held)
            if not wait_replicas:  # with WAIT 1 the promoted primary needs its replica back
                await producer.wait_accepted(len(producer.accepted) + 1, timeout_s=60.0)
            # the replica is promoted; the old primary comes back on its files, as a replica
            await asyncio.sleep(scale.of(3.0, 6.0))
            await asyncio.to_thread(restart_node, own_cluster, victim.port)
            await producer.wait_accepted(len(producer.accepted) + 1, timeout_s=60.0)
            back_at = time.time()  # enqueues acknowledged again
            await producer.wait_accepted(len(producer.accepted) + after, timeout_s=120.0)
        finally:
            await producer.stop()
        await wait_drained(client, len(producer.accepted), timeout_s=scale.of(120.0, 600.0))
        elapsed = time.monotonic() - started

        old = Redis(port=int(victim.port), decode_responses=True)
        try:
            role = await redis_command(old, "ROLE")
        finally:
            await old.aclose()
        assert role[0] == "slave", role  # rejoined as a replica, and used as one
        primary_now = broker.client.get_node_from_key(broker.keys.queue(QUEUE).queued)
        assert primary_now is not None and primary_now.port != victim.port

        runs = ledger.by_job()
        rec = await reconcile(broker, QUEUE, producer.accepted, runs, maybe=producer.failed)
        figures.emit(
            f"14a cluster primary SIGKILL, WAIT_REPLICAS={wait_replicas}", **rec.figures(),
            faults=1, enqueues_refused=len(producer.failed),
            refused_but_stored=rec.ambiguous_stored, seconds=round(elapsed, 1),
            outage_s=round(back_at - killed_at, 2), recover_max_s=None,
        )
        if wait_replicas:
            rec.assert_ok()
        else:  # the control: only losses a failover can cause, and they are reported
            assert [p for p in rec.problems()
                    if not p.startswith(("missing", "unfinished"))] == [], rec.problems()
    finally:
        with contextlib.suppress(Exception):
            await broker.close()

