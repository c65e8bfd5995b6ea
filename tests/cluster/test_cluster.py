"""Redis Cluster (issue 14): selecting it by URL, refusing a plain URL that reaches a cluster
node or a replica, and every operation across queues that live on different primaries.

The conformance suite (tests/brokers, backend `redis-cluster`) covers each transition on the
cluster; here the calls that span queues, nodes and the registries.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from conveyor.brokers import broker_from_url
from conveyor.brokers.base import AckItem, FailItem, WorkerInfo
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.redis.cluster import make_cluster_client, parse_cluster_url
from conveyor.client import AsyncConveyor, Conveyor, JobRequest
from conveyor.errors import (
    BrokerMisconfigured,
    BrokerUnavailable,
    CorruptJob,
    ErrorCode,
    InvalidState,
    PartialEnqueue,
    QueueNotFound,
    ValidationError,
)
from conveyor.jobs import JobState
from tests.support.cluster import LocalCluster, queues_on_each_primary
from tests.support.env import new_prefix
from tests.support.keys import delete_prefix
from tests.support.processes import free_port

SINGLE_URL = "redis://127.0.0.1:6379/0"


# --- the URL ---------------------------------------------------------------------------------
def test_a_cluster_url_names_seeds_and_the_usual_options() -> None:
    nodes, kw = parse_cluster_url(
        "redis+cluster://ann:s%40cret@10.0.0.1:7000,10.0.0.2:7001,node3/?socket_keepalive=true")
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("node3", 6379)]
    assert kw["username"] == "ann" and kw["password"] == "s@cret"
    assert kw["socket_keepalive"] is True and "ssl" not in kw
    _, tls = parse_cluster_url("rediss+cluster://h:1/0")
    assert tls["ssl"] is True


@pytest.mark.parametrize("url", [
    "redis+cluster:///", "redis+cluster://h:1/3", "redis+cluster://h:notaport/",
    "redis+cluster://,/",
])
def test_a_bad_cluster_url_is_a_validation_error(url: str) -> None:
    with pytest.raises(ValidationError):
        parse_cluster_url(url)


def test_broker_from_url_picks_the_cluster_client() -> None:
    broker = broker_from_url("redis+cluster://127.0.0.1:1/", redis_wait_replicas=1)
    assert isinstance(broker, RedisBroker) and broker.cluster and broker.wait_replicas == 1
    plain = broker_from_url(SINGLE_URL)
    assert isinstance(plain, RedisBroker) and not plain.cluster


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture
async def cluster_broker(redis_cluster: LocalCluster) -> AsyncIterator[RedisBroker]:
    prefix = new_prefix()
    broker = RedisBroker.from_url(redis_cluster.url, key_prefix=prefix)
    await broker.connect()
    try:
        yield broker
        for queue in await broker.queues():
            report = await broker.audit(queue)
            assert report.ok, f"audit of {queue!r}: {report}"
    finally:
        await broker.close()
        await delete_prefix(prefix, redis_cluster.url)


def _spread(broker: RedisBroker, stem: str) -> list[str]:
    """Three queue names, each on another primary."""
    assert isinstance(broker.client, RedisCluster)
    slots = broker.client.nodes_manager.slots_cache
    owner = {slot: nodes[0].name for slot, nodes in slots.items()}
    queues = queues_on_each_primary(owner, stem)
    assert len(queues) == 3
    return queues


# --- a plain URL that reaches the wrong server -----------------------------------------------
async def test_a_plain_url_to_a_cluster_node_is_refused_naming_the_cluster_url(
    redis_cluster: LocalCluster,
) -> None:
    broker = RedisBroker.from_url(f"redis://127.0.0.1:{redis_cluster.ports[0]}/0")
    try:
        with pytest.raises(BrokerMisconfigured) as err:
            await broker.connect()
    finally:
        await broker.close()
    assert err.value.code == ErrorCode.BROKER_MISCONFIGURED
    assert "redis+cluster://" in err.value.message


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[int, int]]:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH")
    ports = [free_port(), free_port()]
    procs = []
    for i, port in enumerate(ports):
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--dir", str(tmp_path), "--appendfilename",
                f"a{i}.aof", "--appenddirname", f"aof{i}"]
        if i == 1:
            args += ["--replicaof", "127.0.0.1", str(ports[0])]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
    try:
        yield ports[0], ports[1]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)


async def _answers(port: int) -> None:
    client = Redis(port=port)
    try:
        for _ in range(200):
            with contextlib.suppress(Exception):
                if await client.ping():
                    return
            await asyncio.sleep(0.05)
        raise AssertionError(f"redis-server on {port} did not answer")
    finally:
        await client.aclose()


async def test_a_plain_url_to_a_replica_is_refused_naming_its_primary(
    primary_and_replica: tuple[int, int],
) -> None:
    primary, replica = primary_and_replica
    await _answers(primary)
    await _answers(replica)
    broker = RedisBroker.from_url(f"redis://127.0.0.1:{replica}/0")
    try:
        with pytest.raises(BrokerMisconfigured) as err:
            await broker.connect()
    finally:
        await broker.close()
    assert "replica" in err.value.message and str(primary) in err.value.message
    ok = RedisBroker.from_url(f"redis://127.0.0.1:{primary}/0")
    try:
        await ok.connect()  # the primary itself is fine
    finally:
        await ok.close()


# --- every operation across primaries --------------------------------------------------------
async def test_a_batch_over_three_primaries_then_every_call_across_them(
    cluster_broker: RedisBroker,
) -> None:
    broker = cluster_broker
    q1, q2, q3 = _spread(broker, "spread")
    client = AsyncConveyor(broker, validate_types=False)
    stored = await client.enqueue_many(
        [JobRequest(type="t", payload={"n": i}, queue=q, max_attempts=1)
         for i, q in enumerate([q1, q2, q3, q1, q2, q3])])
    assert all(r.created for r in stored)
    assert set(await broker.queues()) == {q1, q2, q3}
    stats = await broker.stats()
    assert {q: s["queued"] for q, s in stats.items()} == {q1: 2, q2: 2, q3: 2}

    assert await broker.wait_for_work([q1, q2, q3], 1.0)  # markers on three nodes
    got = {q: (await broker.fetch(q, 10, "w1", 30_000)).deliveries for q in (q1, q2, q3)}
    assert all(len(d) == 2 for d in got.values())
    everything = [d for ds in got.values() for d in ds]
    # one ack batch and one fail batch spanning the three nodes
    assert await broker.ack([AckItem(d.job_id, d.token, "1") for d in everything[::2]]) == [
        True] * 3
    states = await broker.fail([FailItem(d.job_id, d.token, "handler_error", "no")
                                for d in everything[1::2]])
    assert states == [JobState.DEAD] * 3

    page = await broker.list_jobs(limit=100)
    assert {j.id for j in page.items} == {r.job_id for r in stored}
    dead = await broker.list_jobs(state=JobState.DEAD, limit=100)
    assert len(dead.items) == 3

    # a redrive into a queue on another primary: two steps, each on one slot
    dead_q1 = [j.id for j in dead.items if j.queue == q1]
    moved = await broker.dlq_move(q1, dead_q1, q2, "test")
    assert [old for old, _ in moved] == dead_q1
    assert (await broker.get(moved[0][1])).state == JobState.QUEUED

    await broker.pause(q3)
    assert await broker.paused_queues([q1, q2, q3]) == {q3}
    await broker.resume(q3)
    assert await broker.paused_queues([q1, q2, q3]) == set()

    for n in range(2):
        info = WorkerInfo(id=f"w{n}", host="h", pid=n, queues=[q1, q2], concurrency=1,
                          jobs=[], started_at_ms=0)
        await broker.register_worker(info, 30.0)
    assert sorted(w.id for w in await broker.workers()) == ["w0", "w1"]
    assert len(await broker.get_many([r.job_id for r in stored])) == 6


async def test_wait_for_work_over_queues_on_several_nodes_wakes_for_any(
    cluster_broker: RedisBroker,
) -> None:
    broker = cluster_broker
    queues = _spread(broker, "wake")
    assert not await broker.wait_for_work(queues, 0.2)  # nothing there: times out

    async def later() -> None:
        await asyncio.sleep(0.2)
        await AsyncConveyor(broker, validate_types=False).enqueue_many(
            [JobRequest(type="t", queue=queues[2])])

    task = asyncio.create_task(later())
    assert await broker.wait_for_work(queues, 4.0)
    await task


@pytest.fixture(params=["redis", "redis-cluster"])
async def either_broker(request: pytest.FixtureRequest) -> AsyncIterator[RedisBroker]:
    cluster = request.param == "redis-cluster"
    url = request.getfixturevalue("redis_cluster").url if cluster else SINGLE_URL
    prefix = new_prefix()
    broker = RedisBroker.from_url(url, key_prefix=prefix)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()
        if cluster:
            await delete_prefix(prefix, url)
        else:
            plain = Redis.from_url(url)
            keys = [k async for k in plain.scan_iter(match=f"{prefix}:*")]
            if keys:
                await plain.delete(*keys)
            await plain.aclose()


async def test_a_failed_enqueue_leaves_no_name_in_the_registry(
    either_broker: RedisBroker,
) -> None:
    broker = either_broker
    good, bad = "phantom-good", "phantom-bad"
    if broker.cluster:
        good, bad, _ = _spread(broker, "phantom")
    await broker.client.set(broker.keys.queue(bad).seq, "not a number")
    client = AsyncConveyor(broker, validate_types=False)
    with pytest.raises(CorruptJob):
        await client.enqueue_many([JobRequest(type="t", queue=good),
                                   JobRequest(type="t", queue=bad)])
    assert bad not in await broker.queues()
    await broker.client.delete(broker.keys.queue(bad).seq)
    assert good in await broker.queues()  # its job was stored: it stays known


@pytest.mark.parametrize("where", ["redis", "redis-cluster"])
async def test_the_sync_client_refuses_a_corrupt_queue_and_leaves_no_name(
    where: str, request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue("redis_cluster").url if where != "redis" else SINGLE_URL
    prefix = new_prefix()
    sync = Conveyor.from_url(url, key_prefix=prefix, validate_types=False)
    reader = RedisBroker.from_url(url, key_prefix=prefix)
    try:
        await reader.connect()
        await reader.client.set(reader.keys.queue("sync-bad").seq, "not a number")
        with pytest.raises(CorruptJob):
            await asyncio.to_thread(sync.enqueue_many, [JobRequest(type="t", queue="sync-ok"),
                                                        JobRequest(type="t", queue="sync-bad")])
        names = await reader.queues()
        assert "sync-bad" not in names and "sync-ok" in names
        await reader.client.delete(reader.keys.queue("sync-bad").seq)
    finally:
        await asyncio.to_thread(sync.close)
        await reader.close()
        if where == "redis":
            plain = Redis.from_url(url)
            keys = [k async for k in plain.scan_iter(match=f"{prefix}:*")]
            if keys:
                await plain.delete(*keys)
            await plain.aclose()
        else:
            await delete_prefix(prefix, url)


async def test_forget_queue_refuses_jobs_drops_an_empty_one_and_keeps_the_others(
    cluster_broker: RedisBroker,
) -> None:
    broker = cluster_broker
    full, paused, other = _spread(broker, "forget")
    client = AsyncConveyor(broker, validate_types=False)
    await client.enqueue_many([JobRequest(type="t", queue=full),
                               JobRequest(type="t", queue=other)])
    with pytest.raises(InvalidState) as err:
        await broker.forget_queue(full)
    assert err.value.details["counts"] == {"queued": 1}
    await broker.pause(paused)  # known only by its flag: forgettable
    await broker.forget_queue(paused)
    assert not await broker.is_paused(paused)
    with pytest.raises(QueueNotFound):
        await broker.forget_queue(paused)
    assert set(await broker.queues()) == {full, other}


async def test_the_sync_client_enqueues_over_the_cluster(redis_cluster: LocalCluster) -> None:
    prefix = new_prefix()
    sync = Conveyor.from_url(redis_cluster.url, key_prefix=prefix, validate_types=False)
    try:
        probe = sync._inner.broker
        assert isinstance(probe, RedisBroker)
        await probe.connect()
        queues = _spread(probe, "sync")
        await probe.close()
        results = await asyncio.to_thread(sync.enqueue_many,
                                          [JobRequest(type="t", queue=q) for q in queues])
        assert len(results) == 3 and all(r.created for r in results)
        job = await asyncio.to_thread(sync.get, results[2].job_id)
        assert job.state == JobState.QUEUED
        reader = RedisBroker.from_url(redis_cluster.url, key_prefix=prefix)
        try:
            assert set(await reader.queues()) == set(queues)
        finally:
            await reader.close()
    finally:
        await asyncio.to_thread(sync.close)
        await delete_prefix(prefix, redis_cluster.url)


# --- the checks on every node ----------------------------------------------------------------
async def test_an_evicting_policy_on_one_replica_refuses_the_cluster(
    redis_cluster: LocalCluster,
) -> None:
    probe = make_cluster_client(redis_cluster.url, timeout_s=5.0)
    try:
        await probe.initialize()
        replica = next(n for n in probe.get_nodes() if n.server_type == "replica")
        await probe.config_set("maxmemory-policy", "allkeys-lru", target_nodes=replica)
        broker = RedisBroker.from_url(redis_cluster.url, key_prefix="cvt-policy")
        try:
            with pytest.raises(BrokerMisconfigured) as err:
                await broker.connect()
        finally:
            await broker.close()
        assert replica.name in err.value.message
    finally:
        await probe.config_set("maxmemory-policy", "noeviction",
                               target_nodes=RedisCluster.ALL_NODES)
        await probe.aclose()


async def test_ready_on_a_whole_cluster(cluster_broker: RedisBroker) -> None:
    await cluster_broker.check_ready()


# --- WAIT for replicas -----------------------------------------------------------------------
async def test_wait_replicas_confirms_writes_and_refuses_to_answer_without_them(
    redis_cluster: LocalCluster,
) -> None:
    prefix = new_prefix()
    one = RedisBroker.from_url(redis_cluster.url, key_prefix=prefix, wait_replicas=1)
    two = RedisBroker.from_url(redis_cluster.url, key_prefix=prefix, wait_replicas=2,
                               wait_timeout_ms=50)
    try:
        await one.connect()
        await two.connect()
        queues = _spread(one, "wait")
        stored = await AsyncConveyor(one, validate_types=False).enqueue_many(
            [JobRequest(type="t", queue=q) for q in queues])
        batch = await one.fetch(queues[0], 1, "w", 30_000)
        (d,) = batch.deliveries
        assert await one.ack([AckItem(d.job_id, d.token, "1")]) == [True]
        await one.pause(queues[1])
        # each primary has one replica: two can never confirm
        with pytest.raises(BrokerUnavailable) as err:
            await AsyncConveyor(two, validate_types=False).enqueue_many(
                [JobRequest(type="t", queue=queues[2])])
        assert err.value.details["replicas_confirmed"] == 1
        with pytest.raises(BrokerUnavailable):
            await two.cancel(stored[2].job_id)
    finally:
        await one.close()
        await two.close()
        await delete_prefix(prefix, redis_cluster.url)


async def test_wait_replicas_on_a_single_redis_without_replicas_refuses() -> None:
    prefix = new_prefix()
    broker = RedisBroker.from_url(SINGLE_URL, key_prefix=prefix, wait_replicas=1,
                                  wait_timeout_ms=20)
    await broker.connect()
    try:
        with pytest.raises(BrokerUnavailable) as err:
            await AsyncConveyor(broker, validate_types=False).enqueue_many(
                [JobRequest(type="t", queue="w1")])
        assert err.value.details["replicas_confirmed"] == 0
    finally:
        keys = [k async for k in broker.client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await broker.client.delete(*keys)
        await broker.close()


# --- a node that stops answering mid-batch ---------------------------------------------------
@pytest.mark.timeout(120)  # a node write-paused up to 30 s: 12 s alone, 30 s under load
async def test_a_batch_cut_by_a_stalled_node_names_what_was_stored(
    redis_cluster: LocalCluster,
) -> None:
    prefix = new_prefix()
    broker = RedisBroker.from_url(redis_cluster.url, key_prefix=prefix, timeout_s=1.0)
    await broker.connect()
    try:
        q1, q2, q3 = _spread(broker, "stall")
        assert isinstance(broker.client, RedisCluster)
        stalled = broker.client.get_node_from_key(broker.keys.queue(q3).queued)
        assert stalled is not None
        await broker.client.execute_command("CLIENT PAUSE", 30000, "WRITE",
                                            target_nodes=stalled)
        client = AsyncConveyor(broker, validate_types=False)
        requests = [JobRequest(type="t", queue=q) for q in (q1, q2, q3)]
        specs = [client.build_spec(r)[0] for r in requests]
        try:
            with pytest.raises(PartialEnqueue) as err:
                await broker.enqueue(specs)
        finally:
            await broker.client.execute_command("CLIENT UNPAUSE", target_nodes=stalled)
        assert err.value.code == ErrorCode.PARTIAL_ENQUEUE
        assert err.value.details["stored"] == [specs[0].id, specs[1].id]
        assert err.value.details["unconfirmed"] == [specs[2].id]
        again = await broker.enqueue(specs)  # the same batch again: nothing twice
        assert [r.job_id for r in again] == [s.id for s in specs]
        assert (await broker.stats())[q1]["queued"] == 1
    finally:
        await broker.close()
        await delete_prefix(prefix, redis_cluster.url)
