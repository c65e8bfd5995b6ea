"""End to end on a Redis Cluster of the test's own (issue 14): a real `conveyor worker` on two
queues (two primaries) rides out the SIGKILL of one primary: while the slot has no primary it
backs off (no crash), once the replica is promoted it reconnects, reloads the scripts there,
and runs the jobs enqueued before the kill and after the failover.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.errors import BrokerUnavailable
from conveyor.jobs import JobState
from tests.e2e.e2e_support import spawn_worker
from tests.support.cluster import (
    LocalCluster,
    allow_failover,
    kill_primary_of,
    queues_on_each_primary,
)
from tests.support.env import new_prefix
from tests.support.waits import wait_for_state, wait_until

pytestmark = pytest.mark.e2e


async def test_a_worker_rides_out_the_loss_of_a_primary(
    own_cluster: LocalCluster, tmp_path: Path,
) -> None:
    prefix = new_prefix()
    client = AsyncConveyor.from_url(own_cluster.url, key_prefix=prefix)
    await client.connect()
    broker = client.broker
    assert isinstance(broker, RedisBroker) and isinstance(broker.client, RedisCluster)
    owner = {s: n[0].name for s, n in broker.client.nodes_manager.slots_cache.items()}
    q, other, _ = queues_on_each_primary(owner, "wfo")
    worker = spawn_worker("worker1", tmp_path=tmp_path, prefix=prefix, queues=f"{q},{other}",
                          concurrency=4, lease_s=2.0, grace_s=2.0, app=None, pythonpath=None,
                          broker_url=own_cluster.url)
    try:
        before = await client.enqueue_many(
            [JobRequest(type="fake", payload={"result": i}, queue=q) for i in range(5)])
        for res in before:
            assert (await wait_for_state(client, res.job_id, (JobState.SUCCEEDED,),
                                         timeout_s=20.0)).state is JobState.SUCCEEDED
        replica = await kill_primary_of(own_cluster, broker, q)
        await asyncio.sleep(3.0)  # the worker's fetches and wake-ups fail meanwhile
        assert worker.running(), worker.logs()
        await allow_failover(replica)

        spec = client.build_spec(JobRequest(type="fake", payload={"result": "after"},
                                            queue=q))[0]
        deadline = time.monotonic() + 30

        async def stored() -> bool:
            try:
                await broker.enqueue([spec])  # the same id each time: never twice
                return True
            except BrokerUnavailable:
                assert time.monotonic() < deadline, "no primary for the slot after 30 s"
                return False

        await wait_until(stored, "the promoted replica to take the enqueue", timeout_s=40.0)
        done = await wait_for_state(client, spec.id, (JobState.SUCCEEDED, JobState.DEAD),
                                    timeout_s=40.0)
        assert done.state is JobState.SUCCEEDED and done.result == "after"
        assert worker.running(), worker.logs()
        assert (await broker.audit(q)).ok
    finally:
        worker.terminate()
        try:
            await worker.wait_exit(10.0)
        except AssertionError:
            worker.kill()
        worker.close_files()
        print(worker.logs())
        await client.close()
