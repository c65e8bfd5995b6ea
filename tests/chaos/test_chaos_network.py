"""Fault suite, network faults (scenario 9): one worker reaches Redis through the test's TCP
proxy, the others directly. A partition lets another worker take the lease over and the
stale worker's ack is rejected; replies cut mid-script leave the script's effect behind; a
flaky link under load loses nothing."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from urllib.parse import urlparse

from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.redis.scripts import Scripts
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.ids import split_job_id
from conveyor.jobs import Job, JobState
from tests.chaos.chaos_support import (
    QUEUE,
    WORK_TYPE,
    Figures,
    Scale,
    WorkerProcess,
    Workers,
    WorkerSpec,
    enqueue_work,
    wait_drained,
    with_spec,
)
from tests.chaos.ledger import Event, Ledger, Run
from tests.chaos.proxy import ChaosProxy
from tests.chaos.reconcile import reconcile
from tests.support.env import REDIS_URL
from tests.support.waits import wait_until

StartProxy = Callable[[str, int], ChaosProxy]
SHA = Scripts().sha
DONE_STATES = (JobState.SUCCEEDED, JobState.DEAD)


def to_main_redis(proxies: StartProxy) -> ChaosProxy:
    url = urlparse(REDIS_URL)
    return proxies(url.hostname or "127.0.0.1", url.port or 6379)


async def wait_run(
    ledger: Ledger, job_id: str, worker: WorkerProcess, event: Event, timeout_s: float
) -> Run:
    async def seen() -> Run | None:
        return next((r for r in ledger.by_job().get(job_id, [])
                     if r.pid == worker.pid and r.event is event), None)

    return await wait_until(seen, f"{worker.name} to {event} {job_id}", timeout_s)


async def wait_finished(client: AsyncConveyor, job_id: str, timeout_s: float) -> Job:
    async def finished() -> Job | None:
        job = await client.get(job_id)
        return job if job.state in DONE_STATES else None

    return await wait_until(finished, f"{job_id} to finish", timeout_s)


def rejected_acks(worker: WorkerProcess) -> list[str]:
    return [str(e.get("job_id")) for e in worker.events("ack_rejected_lease_lost")]


async def test_partition_another_worker_takes_over_and_the_stale_ack_is_rejected(
    scale: Scale, client: AsyncConveyor, main_broker: RedisBroker, workers: Workers,
    spec: WorkerSpec, ledger: Ledger, figures: Figures, proxies: StartProxy,
) -> None:
    """Worker A (through the proxy) runs a job; the proxy drops everything; worker B starts,
    the lease expires and B runs the job; A finishes meanwhile and, once the link heals, its
    ack is rejected: the job succeeds once, with B's result."""
    proxy = to_main_redis(proxies)
    rounds = scale.of(1, 5)
    lease = 1.5
    a = await workers.start(with_spec(spec, broker_url=proxy.url, concurrency=1, lease_s=lease))
    ids: list[str] = []
    takeovers: list[float] = []
    started = time.monotonic()
    for _ in range(rounds):
        job = await client.enqueue(WORK_TYPE, {"ms": 2000}, queue=QUEUE, max_attempts=5)
        ids.append(job.id)
        await wait_run(ledger, job.id, a, Event.START, timeout_s=15.0)
        # Cut A off first, then start B: B's start-up (seconds on a loaded machine) must not
        # race A's run, or A's ack gets through before the cut.
        proxy.drop()
        dropped_at = time.time()
        b = await workers.start(with_spec(spec, concurrency=1, lease_s=lease))
        took = await wait_run(ledger, job.id, b, Event.START, timeout_s=lease + 15.0)
        takeovers.append(took.at - dropped_at)
        await wait_run(ledger, job.id, a, Event.DONE, timeout_s=15.0)  # A finished, unheard
        proxy.heal()

        async def rejected(job_id: str = job.id) -> bool:
            return job_id in rejected_acks(a)

        await wait_until(rejected, "A's stale ack to be rejected", timeout_s=30.0)
        done = await wait_finished(client, job.id, timeout_s=20.0)
        assert done.state is JobState.SUCCEEDED, done.model_dump_json(indent=1)
        assert isinstance(done.result, dict) and done.result["pid"] == b.pid
        assert done.attempts == 2
        assert [(h.outcome, h.worker) for h in done.history] == [
            ("lease_expired", a.worker_id), ("succeeded", b.worker_id)]
        b.terminate()  # the next round needs A to be the only idle worker again
        assert await b.wait_exit(15.0) == 0, b.logs()
    elapsed = time.monotonic() - started

    rec = await reconcile(main_broker, QUEUE, ids, ledger.by_job())
    figures.emit(
        "9 partition: lease taken over, stale ack rejected", **rec.figures(), faults=rounds,
        stale_acks_rejected=len(rejected_acks(a)), seconds=round(elapsed, 1),
        recover_max_s=round(max(takeovers), 3),
    )
    rec.assert_ok()
    assert len(rec.duplicated) == rounds  # A's run and B's: explained by the expired lease


async def test_cut_mid_script_leaves_the_effect_without_the_reply(
    scale: Scale, client: AsyncConveyor, main_broker: RedisBroker, workers: Workers,
    spec: WorkerSpec, ledger: Ledger, figures: Figures, proxies: StartProxy,
) -> None:
    """The proxy resets the link after Redis ran a script and before the worker read the
    reply. A lost fetch reply orphans a lease: it expires and the job runs once, on its
    second delivery. A lost ack reply: the job is already SUCCEEDED, and stays so."""
    proxy = to_main_redis(proxies)
    a = await workers.start(with_spec(spec, broker_url=proxy.url, concurrency=1, lease_s=1.0))
    ids: list[str] = []
    started = time.monotonic()
    for _ in range(scale.of(1, 5)):
        fetched, _ = client.build_spec(JobRequest(WORK_TYPE, {"ms": 10}, QUEUE, max_attempts=5))
        proxy.cut_after(split_job_id(fetched.id)[1].encode(), reply=True)
        await client.broker.enqueue([fetched])
        acked, _ = client.build_spec(JobRequest(WORK_TYPE, {"ms": 10}, QUEUE, max_attempts=5))
        ids += [fetched.id, acked.id]

        job = await wait_finished(client, fetched.id, timeout_s=20.0)
        assert job.state is JobState.SUCCEEDED and job.attempts == 2, job.model_dump_json()
        assert [h.outcome for h in job.history] == ["lease_expired", "succeeded"]
        runs = ledger.by_job()[fetched.id]
        assert [(r.attempt, r.event) for r in runs] == [(2, Event.START), (2, Event.DONE)]

        proxy.cut_after(SHA["ack"].encode(), split_job_id(acked.id)[1].encode())
        await client.broker.enqueue([acked])
        job = await wait_finished(client, acked.id, timeout_s=20.0)
        assert job.state is JobState.SUCCEEDED and job.attempts == 1, job.model_dump_json()
        assert [h.outcome for h in job.history] == ["succeeded"]

        async def trap_sprung() -> bool:
            return proxy.trap_pending() == 0

        await wait_until(trap_sprung, "the ack's reply to be cut", timeout_s=10.0)
    elapsed = time.monotonic() - started
    a.terminate()  # a clean stop flushes its completions and logs their counts
    assert await a.wait_exit(15.0) == 0, a.logs()
    [stopped] = a.events("worker_stopped")

    rec = await reconcile(main_broker, QUEUE, ids, ledger.by_job())
    figures.emit(
        "9 cut mid-script (fetch and ack replies lost)", **rec.figures(),
        faults=proxy.stats.scripted_cuts, worker_acked=stopped["acked"],
        worker_rejected=stopped["rejected"], seconds=round(elapsed, 1), recover_max_s=None,
    )
    rec.assert_ok()
    assert rec.duplicated == []


async def test_flaky_link_under_load_loses_nothing(
    scale: Scale, client: AsyncConveyor, main_broker: RedisBroker, workers: Workers,
    spec: WorkerSpec, ledger: Ledger, figures: Figures, proxies: StartProxy,
) -> None:
    """One worker's link delays, drops, cuts, and loses script replies at random while two
    direct workers share the load: every job still ends once, the indexes drain."""
    rng = random.Random(9)
    proxy = to_main_redis(proxies)
    spec = with_spec(spec, concurrency=4, lease_s=1.5)
    await asyncio.gather(
        workers.start(with_spec(spec, broker_url=proxy.url)),
        *(workers.start(spec) for _ in range(2)),
    )
    total = scale.of(300, 3000)
    started = time.monotonic()
    ids = await enqueue_work(client, total, (10, 100), rng=rng)
    faults: dict[str, int] = {}
    deadline = time.monotonic() + scale.of(4.0, 60.0)

    async def busy() -> bool:
        counts = (await client.stats([QUEUE]))[QUEUE]
        return counts["succeeded"] + counts["dead"] < total

    while time.monotonic() < deadline and await busy():
        kind = rng.choice(["delay", "drop", "cut", "lost_fetch", "lost_ack"])
        faults[kind] = faults.get(kind, 0) + 1
        if kind == "delay":
            proxy.delay(rng.uniform(0.05, 0.3))
            await asyncio.sleep(rng.uniform(0.3, 1.0))  # the fault's length
            proxy.forward()
        elif kind == "drop":
            proxy.drop()
            await asyncio.sleep(rng.uniform(0.3, 2.5))  # the partition's length
            proxy.heal()
        elif kind == "cut":
            proxy.cut()
        else:
            proxy.cut_after(SHA["fetch" if kind == "lost_fetch" else "ack"].encode())
        await asyncio.sleep(rng.uniform(0.1, 0.5))  # the faults' cadence
    proxy.heal()
    await wait_drained(client, total, timeout_s=scale.of(60.0, 300.0))
    elapsed = time.monotonic() - started

    rec = await reconcile(main_broker, QUEUE, ids, ledger.by_job())
    figures.emit(
        "9 flaky link under load", **rec.figures(), faults=sum(faults.values()),
        fault_kinds=faults, seconds=round(elapsed, 1), recover_max_s=None,
    )
    rec.assert_ok()
    assert rec.succeeded == total
