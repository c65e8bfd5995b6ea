"""Worker metrics (issue 18) in-process on the real Redis broker: the counters move by what the
broker answered (succeeded, failed, dead, released, lease_lost), the histograms observe every
attempt, the slots gauge and the reaper's lease expiries are read from the worker's own
registry, and the HTTP server serves it."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.errors import JobError, PermanentError
from conveyor.handlers import JobContext, Registry
from conveyor.jobs import JobState
from conveyor.retry import FixedBackoff
from conveyor.settings import Settings
from conveyor.worker import Worker
from conveyor.worker.metrics import FAMILIES, WorkerMetrics
from tests.support.inproc import make_settings, running
from tests.support.waits import wait_for_state, wait_true
from tests.worker.worker_helpers import QUEUE

DONE = {JobState.SUCCEEDED, JobState.DEAD}


def sample(m: WorkerMetrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


def jobs(m: WorkerMetrics, type_: str, outcome: str) -> float:
    return sample(m, "conveyor_worker_jobs_total", queue=QUEUE, type=type_, outcome=outcome)


def worker(broker: RedisBroker, registry: Registry, m: WorkerMetrics,
           settings: Settings | None = None) -> Worker:
    return Worker(broker, queues=[QUEUE], concurrency=2, registry=registry,
                  settings=settings or make_settings(), metrics=m)


async def test_outcomes_durations_and_waits_are_counted(
    registry: Registry, client: AsyncConveyor, broker: RedisBroker
) -> None:
    @registry.handler("flaky", max_attempts=5, backoff=FixedBackoff(0.01))
    async def flaky(payload: None, ctx: JobContext) -> int:
        if ctx.attempt <= 2:
            raise JobError("not yet", code="flaky_error")
        return ctx.attempt

    @registry.handler("doomed", max_attempts=5)
    async def doomed(payload: None) -> None:
        raise PermanentError("no")

    m = WorkerMetrics()
    ok = await client.enqueue("flaky", queue=QUEUE)
    bad = await client.enqueue("doomed", queue=QUEUE)
    async with running(worker(broker, registry, m)):
        assert (await wait_for_state(client, ok.id, DONE)).state is JobState.SUCCEEDED
        assert (await wait_for_state(client, bad.id, DONE)).state is JobState.DEAD
        # the last outcome is counted when the broker's answer arrives
        await wait_true(lambda: jobs(m, "flaky", "succeeded") == 1
                         and jobs(m, "doomed", "dead") == 1)
        assert sample(m, "conveyor_worker_slots", state="free") == 2
        assert sample(m, "conveyor_worker_slots", state="busy") == 0
    assert jobs(m, "flaky", "failed") == 2
    assert jobs(m, "flaky", "dead") == 0
    assert jobs(m, "doomed", "failed") == 0
    labels = {"queue": QUEUE, "type": "flaky"}
    assert sample(m, "conveyor_worker_job_duration_seconds_count", **labels) == 3
    assert sample(m, "conveyor_worker_queue_wait_seconds_count", **labels) == 3
    assert sample(m, "conveyor_worker_broker_call_seconds_count", call="fetch") >= 1
    assert sample(m, "conveyor_worker_broker_call_seconds_count", call="ack") >= 1
    assert sample(m, "conveyor_worker_broker_call_seconds_count", call="fail") >= 1
    assert sample(m, "conveyor_worker_maintenance_seconds_count", step="reap") >= 1


async def test_busy_slots_released_and_lease_lost(
    registry: Registry, client: AsyncConveyor, broker: RedisBroker
) -> None:
    started = asyncio.Event()

    @registry.handler("long", max_attempts=3)
    async def long(payload: None) -> None:
        started.set()
        await asyncio.sleep(60)

    m = WorkerMetrics()
    job = await client.enqueue("long", queue=QUEUE)
    async with running(worker(broker, registry, m, make_settings(shutdown_grace_s=0.1))):
        await asyncio.wait_for(started.wait(), 10)
        assert sample(m, "conveyor_worker_slots", state="busy") == 1
        assert sample(m, "conveyor_worker_slots", state="free") == 1
    assert (await client.get(job.id)).state is JobState.QUEUED
    assert jobs(m, "long", "released") == 1

    # the lease expires under a worker whose heartbeat comes too late: reaped, then lost
    started.clear()
    m2 = WorkerMetrics()
    settings = make_settings(lease_s=0.3, heartbeat_interval_s=0.6, reap_interval_s=0.05)
    async with running(worker(broker, registry, m2, settings)):
        await asyncio.wait_for(started.wait(), 10)
        await wait_true(lambda: jobs(m2, "long", "lease_lost") >= 1)
        await wait_true(
            lambda: sample(m2, "conveyor_worker_lease_expiries_total", queue=QUEUE,
                           outcome="requeued") >= 1)


async def test_two_servers_on_port_zero_serve_their_own_registry(
    registry: Registry, client: AsyncConveyor, broker: RedisBroker
) -> None:
    @registry.handler("noop")
    async def noop(payload: None) -> None:
        return None

    first, second = WorkerMetrics(), WorkerMetrics()
    urls = [first.serve("127.0.0.1", 0), second.serve("127.0.0.1", 0)]
    try:
        assert urls[0] != urls[1]
        assert all(u.startswith("http://127.0.0.1:") for u in urls)
        w = worker(broker, registry, first)
        job = await client.enqueue("noop", queue=QUEUE)
        async with running(w):
            await wait_for_state(client, job.id, DONE)
            await wait_true(lambda: jobs(first, "noop", "succeeded") == 1)
            listed = [i for i in await client.workers() if i.id == w.worker_id]
            assert [i.metrics_url for i in listed] == [urls[0]]
        async with httpx.AsyncClient() as http:
            texts = [(await http.get(u)).text for u in urls]
        names = [{f.name for f in text_string_to_metric_families(t)} for t in texts]
        for found in names:  # the parser drops `_total` from counter names
            assert {n.removesuffix("_total") for n in FAMILIES} <= found
        served = [[(s.labels, s.value) for f in text_string_to_metric_families(t)
                   for s in f.samples if s.name == "conveyor_worker_jobs_total"] for t in texts]
        assert served[0] == [({"queue": QUEUE, "type": "noop", "outcome": "succeeded"}, 1.0)]
        assert served[1] == []  # its own registry: nothing of the first worker
    finally:
        first.close()
        second.close()
