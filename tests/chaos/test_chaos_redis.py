"""Fault suite, Redis faults, each on a redis-server the test owns: killed and restarted with
AOF `always` / `everysec` under load (4), restarted without persistence so the
reconciliation must report the loss (5), and a Redis that may evict keys (8)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from redis.asyncio import Redis

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.errors import BrokerUnavailable
from conveyor.jobs import JobState
from conveyor.settings import Settings
from conveyor.web import create_app
from tests.chaos.chaos_support import (
    QUEUE,
    WORK_TYPE,
    Figures,
    Scale,
    Workers,
    WorkerSpec,
    enqueue_work,
    wait_drained,
    with_spec,
)
from tests.chaos.ledger import Event, Ledger
from tests.chaos.reconcile import reconcile
from tests.support.redis_server import (
    AOF_ALWAYS,
    AOF_EVERYSEC,
    NO_PERSISTENCE,
    RedisServer,
    StartRedis,
)
from tests.support.waits import wait_until

#: Pause between two enqueues of the producer: a steady trickle, not a flood.
PRODUCER_PACE_S = 0.005
#: An enqueue in flight when the producer is stopped: bounded by the socket timeout.
STOP_TIMEOUT_S = 15.0


@asynccontextmanager
async def own_client(url: str, prefix: str, *, check: bool = True) -> AsyncIterator[
    AsyncConveyor
]:
    broker = RedisBroker.from_url(url, key_prefix=prefix, check_server=check)
    await broker.connect()
    try:
        yield AsyncConveyor(broker, validate_types=False)
    finally:
        with contextlib.suppress(Exception):
            await broker.close()


def redis_of(client: AsyncConveyor) -> Redis:
    assert isinstance(client.broker, RedisBroker)
    assert isinstance(client.broker.client, Redis)  # the single-node broker of these tests
    return client.broker.client


class Producer:
    """Enqueues one job at a time until stopped, keeping apart the ids Redis acknowledged
    and the ids whose enqueue failed (those may or may not exist)."""

    def __init__(self, client: AsyncConveyor, rng: random.Random) -> None:
        self.client = client
        self.rng = rng
        self.accepted: list[str] = []
        self.failed: list[str] = []
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """A flag, not a cancel: on Python 3.11 redis-py's internal wait_for can swallow a
        CancelledError, and the loop would then run on."""
        self._stopping = True
        if self._task is not None:
            await asyncio.wait_for(self._task, STOP_TIMEOUT_S)

    async def _run(self) -> None:
        while not self._stopping:
            request = JobRequest(WORK_TYPE, {"ms": self.rng.randint(10, 50)}, QUEUE,
                                 max_attempts=20)
            spec, _ = self.client.build_spec(request)
            try:
                await self.client.broker.enqueue([spec])
            except BrokerUnavailable:
                self.failed.append(spec.id)
            else:
                self.accepted.append(spec.id)
            await asyncio.sleep(PRODUCER_PACE_S)

    async def wait_accepted(self, count: int, timeout_s: float) -> None:
        async def enough() -> bool:
            return len(self.accepted) >= count

        await wait_until(enough, f"{count} acknowledged enqueues", timeout_s)

    async def wait_failed(self, count: int, timeout_s: float) -> None:
        async def enough() -> bool:
            return len(self.failed) >= count

        await wait_until(enough, f"{count} failed enqueues", timeout_s)


async def _api_while_down(api: httpx.AsyncClient) -> int:
    """The API never answers 2xx for a job it could not store: 503 + Retry-After."""
    body = {"type": WORK_TYPE, "queue": QUEUE, "payload": {"ms": 10}, "max_attempts": 20}
    enqueue = await api.post("/v1/jobs", json=body)
    assert enqueue.status_code == 503, enqueue.text
    assert enqueue.headers.get("retry-after"), enqueue.headers
    assert enqueue.json()["error"]["code"] == "broker_unavailable"
    ready = await api.get("/readyz")
    assert ready.status_code == 503, ready.text
    return enqueue.status_code


async def _outage(
    server: RedisServer, producer: Producer, api: httpx.AsyncClient, outage_s: float
) -> tuple[float, float, int]:
    """SIGKILL the server, check that nothing is accepted while it is down, restart it on
    its files. Returns when it was killed, when it answered again, and the API's status."""
    server.kill()
    killed_at = time.time()
    await producer.wait_failed(len(producer.failed) + 3, timeout_s=15.0)
    with pytest.raises(BrokerUnavailable):
        await producer.client.get(producer.accepted[0])
    api_status = await _api_while_down(api)
    await asyncio.sleep(outage_s)  # the outage's length: the fault, not a wait
    await server.start()
    return killed_at, time.time(), api_status


@pytest.mark.parametrize("fsync", ["always", "everysec"])
async def test_redis_killed_and_restarted_loses_no_acknowledged_job(
    fsync: str, scale: Scale, redis_servers: StartRedis, workers: Workers, prefix: str,
    ledger: Ledger, figures: Figures,
) -> None:
    """Scenario 4: SIGKILL the Redis (AOF on) under load, keep it down, restart it on the
    same files. With `always` no acknowledged enqueue is lost; the API answers 503 while it
    is down; jobs delayed into and past the outage still run, once they are due."""
    rng = random.Random(4)
    server = await redis_servers(f"redis-{fsync}", AOF_ALWAYS if fsync == "always"
                                 else AOF_EVERYSEC)
    outage_s = scale.of(1.0, 5.0)
    before, after = scale.of((150, 100), (2000, 2000))
    spec = WorkerSpec(broker_url=server.url, prefix=prefix, ledger=ledger.path,
                      concurrency=4, lease_s=3.0)
    settings = Settings(broker_url=server.url, key_prefix=prefix)
    async with own_client(server.url, prefix) as client, \
            own_client(server.url, prefix) as api_client:
        app = create_app(api_client, settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
            await asyncio.gather(*(workers.start(spec) for _ in range(scale.of(2, 3))))
            started = time.monotonic()
            producer = Producer(client, rng)
            producer.start()
            try:
                await producer.wait_accepted(before, timeout_s=60.0)
                delayed = [r.job_id for r in await client.enqueue_many(
                    [JobRequest(WORK_TYPE, {"ms": 10}, QUEUE, max_attempts=20,
                                delay=outage_s * f) for f in (0.5, 1.5) for _ in range(5)]
                )]
                killed_at, up_at, api_status = await _outage(server, producer, api, outage_s)
                await producer.wait_accepted(len(producer.accepted) + after, timeout_s=60.0)
            finally:
                await producer.stop()
            created = await api.post(
                "/v1/jobs", json={"type": WORK_TYPE, "queue": QUEUE, "payload": {"ms": 10},
                                  "max_attempts": 20})
            assert created.status_code == 201, created.text
            accepted = [*producer.accepted, *delayed, created.json()["id"]]
            await wait_drained(client, len(accepted), timeout_s=scale.of(60.0, 300.0))
            elapsed = time.monotonic() - started

            runs = ledger.by_job()
            rec = await reconcile(client.broker, QUEUE, accepted, runs,
                                  maybe=producer.failed)
            # A run started after the restart was fetched after it: the workers are back.
            fetched_after = [r.at for rs in runs.values() for r in rs
                             if r.event is Event.START and r.at >= up_at]
            figures.emit(
                f"4 Redis SIGKILL + restart, appendfsync {fsync}", **rec.figures(),
                faults=1, outage_s=round(up_at - killed_at, 2),
                enqueues_refused=len(producer.failed), api_status_while_down=api_status,
                delayed_jobs=len(delayed), seconds=round(elapsed, 1),
                refused_but_stored=rec.ambiguous_stored,
                recover_max_s=round(min(fetched_after) - up_at, 3) if fetched_after else None,
            )
            if fsync == "always":
                rec.assert_ok()
            else:  # everysec may lose up to a second of writes on a crash of the machine
                assert [p for p in rec.problems() if not p.startswith("missing")] == []
            for job_id in delayed:
                job = await client.get(job_id)
                assert job.state is JobState.SUCCEEDED, job.model_dump_json(indent=1)
                assert job.run_at is not None and job.started_at is not None
                assert job.started_at >= job.run_at  # promoted when due, not before


async def test_redis_without_persistence_loses_jobs_and_the_check_fails(
    scale: Scale, redis_servers: StartRedis, workers: Workers, prefix: str, ledger: Ledger,
    figures: Figures,
) -> None:
    """Scenario 5: a Redis with no AOF and no RDB is restarted: everything it held is gone,
    and the reconciliation must say so (the checker can fail)."""
    rng = random.Random(5)
    server = await redis_servers("redis-volatile", NO_PERSISTENCE)
    spec = WorkerSpec(broker_url=server.url, prefix=prefix, ledger=ledger.path,
                      concurrency=4, lease_s=2.0)
    async with own_client(server.url, prefix) as client:
        worker = await workers.start(spec)
        assert worker.events("redis_aof_disabled"), "no warning about a Redis without AOF"
        done = await enqueue_work(client, scale.of(30, 1000), (10, 30), rng=rng)
        later = [r.job_id for r in await client.enqueue_many(
            [JobRequest(WORK_TYPE, {"ms": 10}, QUEUE, max_attempts=20, delay=3600)]
            * scale.of(10, 200)
        )]

        async def ran() -> bool:
            counts = (await client.stats([QUEUE]))[QUEUE]
            return counts["succeeded"] == len(done) and not counts["running"]

        await wait_until(ran, "the jobs due now to run", timeout_s=60.0)
        await server.restart()

        async def probe_enqueued() -> str | None:
            # The first call on a pooled connection from before the restart fails.
            with contextlib.suppress(BrokerUnavailable):
                job = await client.enqueue(WORK_TYPE, {"ms": 1}, queue=QUEUE, max_attempts=20)
                return job.id
            return None

        probe = await wait_until(probe_enqueued, "an enqueue to succeed", timeout_s=15.0)

        async def probe_done() -> bool:
            return (await client.get(probe)).state is JobState.SUCCEEDED

        await wait_until(probe_done, "the worker to work again", timeout_s=30.0)
        runs = ledger.by_job()
        rec = await reconcile(client.broker, QUEUE, done + later, runs)
        remembered = [j for j in done if any(r.event is Event.DONE for r in runs[j])]
        figures.emit("5 Redis restart without persistence", **rec.figures(), faults=1,
                     ran_then_forgotten=len(remembered), problems=len(rec.problems()),
                     recover_max_s=None)
        assert sorted(rec.missing) == sorted(done + later)
        assert sorted(remembered) == sorted(done)  # the ledger remembers what Redis forgot
        with pytest.raises(AssertionError, match="missing"):
            rec.assert_ok()


EVICTING = ("allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu",
            "volatile-random", "volatile-ttl")


async def test_worker_refuses_a_redis_that_may_evict(
    scale: Scale, redis_servers: StartRedis, workers: Workers, prefix: str, ledger: Ledger,
    figures: Figures,
) -> None:
    """Scenario 8: with any eviction policy the worker exits 1 at start with a clear
    message, touching nothing; with `noeviction` the same worker starts and works."""
    server = await redis_servers("redis-lru", (*AOF_ALWAYS, "--maxmemory", "64mb",
                                               "--maxmemory-policy", "allkeys-lru"))
    spec = WorkerSpec(broker_url=server.url, prefix=prefix, ledger=ledger.path)
    policies = scale.of(EVICTING[:1], EVICTING)
    async with own_client(server.url, prefix, check=False) as client:
        raw = redis_of(client)
        job = await client.enqueue(WORK_TYPE, {"ms": 1}, queue=QUEUE, max_attempts=3)
        for policy in policies:
            await raw.config_set("maxmemory-policy", policy)
            worker = await workers.start(spec, wait=False)
            assert await worker.wait_exit(20.0) == 1, worker.logs()
            [refused] = worker.events("broker_misconfigured_at_start")
            assert refused["level"] == "ERROR"
            assert policy in refused["error"] and "noeviction" in refused["error"]
            assert not worker.events("worker_started")
        still = await client.get(job.id)
        assert still.state is JobState.QUEUED and still.attempts == 0
        assert await client.workers() == []

        await raw.config_set("maxmemory-policy", "noeviction")
        await workers.start(with_spec(spec, concurrency=1))

        async def ran() -> bool:
            return (await client.get(job.id)).state is JobState.SUCCEEDED

        await wait_until(ran, "the job to run once eviction is off", timeout_s=20.0)
        figures.emit("8 eviction policy refused", jobs=1, faults=len(policies),
                     refused=len(policies), lost=0, duplicated=0, recover_max_s=None)
