"""Fault suite, worker faults: random SIGKILLs under load (1), rolling SIGTERM restarts (2),
crashes at fixed points of one job's life (3), jobs outliving their lease (6) and a poison
job that kills every worker that runs it (7). Real worker processes on the shared Redis,
under the test's own key prefix; each scenario ends with the reconciliation."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import Job, JobState
from tests.chaos.chaos_support import (
    POISON_TYPE,
    QUEUE,
    WORK_TYPE,
    Figures,
    Fleet,
    Scale,
    WorkerProcess,
    Workers,
    WorkerSpec,
    enqueue_work,
    wait_drained,
    with_spec,
)
from tests.chaos.ledger import Event, Ledger
from tests.chaos.reconcile import load_jobs, reconcile, redelivery_delays, summarise
from tests.support.waits import wait_until

CRASH_EXIT = 137


def outcomes(job: Job) -> list[str]:
    return [h.outcome for h in job.history]


def crash_times(workers: Workers) -> dict[int, float]:
    """pid -> when chaos_app killed that worker (its last log line says)."""
    return {int(e["pid"]): float(e["at"]) for w in workers.all for e in w.events("chaos_crash")}


async def test_random_sigkill_under_load(
    scale: Scale, client: AsyncConveyor, main_broker: RedisBroker, workers: Workers,
    spec: WorkerSpec, ledger: Ledger, figures: Figures,
) -> None:
    """Scenario 1: SIGKILL a random worker at a fixed cadence while jobs flow; a supervisor
    restarts it. Nothing is lost; every duplicate run is explained by a lost lease."""
    rng = random.Random(1)
    total = scale.of(600, 5000)
    size, concurrency = scale.of((3, 4), (4, 8))
    spec = with_spec(spec, concurrency=concurrency, lease_s=scale.of(1.0, 2.0))
    kill_every_s = scale.of(0.4, 1.0)
    max_kills = scale.of(4, 1000)
    fleet = Fleet(workers, spec, size)
    await fleet.start()

    started = time.monotonic()
    ids = await enqueue_work(client, total, scale.of((20, 80), (10, 200)), rng=rng)
    kill_times: dict[int, float] = {}

    async def busy() -> bool:
        counts = (await client.stats([QUEUE]))[QUEUE]
        return counts["succeeded"] + counts["dead"] < total

    while len(fleet.kills) < max_kills and await busy():
        await asyncio.sleep(kill_every_s)  # the fault's cadence, not a wait for a condition
        await fleet.kill_one(rng.choice)
        victim = fleet.kills[-1]
        assert victim.killed_at is not None
        kill_times[victim.pid] = victim.killed_at
    await wait_drained(client, total, timeout_s=scale.of(60.0, 600.0))
    elapsed = time.monotonic() - started
    await fleet.stop_keeping()

    runs = ledger.by_job()
    rec = await reconcile(main_broker, QUEUE, ids, runs)
    figures.emit(
        "1 random SIGKILL under load", **rec.figures(), faults=len(fleet.kills),
        workers=size, concurrency=concurrency, lease_s=spec.lease_s,
        restarts=fleet.restarts(), seconds=round(elapsed, 1),
        **summarise(redelivery_delays(runs, kill_times)),
    )
    rec.assert_ok()
    assert len(fleet.kills) >= min(max_kills, 1)
    assert rec.lost == 0 and rec.dead == 0
    assert rec.succeeded == total


async def _rolling_restart(
    workers: Workers, members: list[WorkerProcess], spec: WorkerSpec, i: int
) -> WorkerProcess:
    """SIGTERM member i, start its replacement, and check the old one exits cleanly. The
    replacements alternate grace 0 (running jobs released, attempt refunded) and grace 5 s
    (running jobs finish first)."""
    old = members[i % len(members)]
    old.terminate()
    grace = 0.0 if i % 2 == 0 else 5.0
    new = await workers.start(with_spec(spec, grace_s=grace), wait=False)
    code = await old.wait_exit(old.spec.grace_s + 15.0)
    assert code == 0, old.logs()
    members[i % len(members)] = await new.wait_started()
    return old


async def test_rolling_sigterm_restarts_cause_no_duplicates(
    scale: Scale, client: AsyncConveyor, main_broker: RedisBroker, workers: Workers,
    spec: WorkerSpec, ledger: Ledger, figures: Figures,
) -> None:
    """Scenario 2: restart every worker in turn with SIGTERM while jobs flow: zero
    duplicates, no lease ever expires, and every job is charged exactly one attempt."""
    rng = random.Random(2)
    total = scale.of(500, 5000)
    size, concurrency = scale.of((2, 4), (4, 8))
    spec = with_spec(spec, concurrency=concurrency, lease_s=scale.of(2.0, 5.0))
    members = list(await asyncio.gather(
        *(workers.start(with_spec(spec, grace_s=5.0 * (i % 2))) for i in range(size))
    ))
    started = time.monotonic()
    ids = await enqueue_work(client, total, scale.of((10, 60), (10, 200)), rng=rng)
    restarts = 0

    async def busy() -> bool:
        counts = (await client.stats([QUEUE]))[QUEUE]
        return counts["succeeded"] + counts["dead"] < total

    # Short: every worker restarted once. Long: restart round after round until done.
    while (restarts < size or scale.long) and await busy():
        await _rolling_restart(workers, members, spec, restarts)
        restarts += 1
    await wait_drained(client, total, timeout_s=scale.of(60.0, 600.0))
    elapsed = time.monotonic() - started

    runs = ledger.by_job()
    rec = await reconcile(main_broker, QUEUE, ids, runs)
    jobs = await load_jobs(main_broker, ids)
    charged = sorted({entry[0].attempts for entry in jobs.values() if entry is not None})
    released = sum(1 for e in jobs.values() if e and "released" in outcomes(e[0]))
    figures.emit(
        "2 rolling SIGTERM restarts", **rec.figures(), faults=restarts, workers=size,
        concurrency=concurrency, released_jobs=released, attempts_charged=charged,
        seconds=round(elapsed, 1), recover_max_s=None,
    )
    rec.assert_ok()
    assert restarts >= size
    assert rec.duplicated == [], "a SIGTERM restart ran a job to completion twice"
    assert rec.lease_expiries == 0, "a graceful stop let a lease expire"
    assert charged == [1], f"attempts charged: {charged}"
    for w in workers.all:
        assert not w.error_lines(), f"{w.name} logged errors:\n" + "\n".join(w.error_lines())


CRASH_POINTS = ("after_fetch", "mid_handler", "before_ack", "after_ack")


@pytest.mark.parametrize("point", CRASH_POINTS)
async def test_crash_at_a_fixed_point_of_a_job(
    point: str, scale: Scale, client: AsyncConveyor, main_broker: RedisBroker,
    workers: Workers, spec: WorkerSpec, ledger: Ledger, figures: Figures,
) -> None:
    """Scenario 3: a worker dies (exit 137) at one point of a job's first attempt, via the
    crash hooks of chaos_app. Each wave is one target job among bystanders; the next wave
    starts when the target is finished, so crashes never overlap."""
    rng = random.Random(3)
    waves = scale.of(1, 5)
    bystanders = scale.of(10, 100)
    size, concurrency = scale.of((1, 2), (2, 4))
    spec = with_spec(spec, concurrency=concurrency, lease_s=1.0, crash_hooks=True)
    fleet = Fleet(workers, spec, size)
    await fleet.start()
    ids: list[str] = []
    targets: list[str] = []
    started = time.monotonic()
    for _ in range(waves):
        [target] = [r.job_id for r in await client.enqueue_many(
            [JobRequest(WORK_TYPE, {"ms": 300, "crash_at": point}, QUEUE, max_attempts=5)]
        )]
        targets.append(target)
        ids.append(target)
        ids += await enqueue_work(client, bystanders, (10, 50), rng=rng)

        async def target_done(target: str = target) -> bool:
            return (await client.get(target)).state in (JobState.SUCCEEDED, JobState.DEAD)

        await wait_until(target_done, f"{point} target to finish", timeout_s=30.0)
    await wait_drained(client, len(ids), timeout_s=60.0)
    elapsed = time.monotonic() - started
    await fleet.stop_keeping()

    runs = ledger.by_job()
    rec = await reconcile(main_broker, QUEUE, ids, runs)
    crashes = [e for w in workers.all for e in w.events("chaos_crash")]
    # Recovery: from each crash to the next start of the runs it cut short; after_fetch cut
    # the target before it started, so its next start is measured from the crash.
    delays = redelivery_delays(runs, crash_times(workers))
    for e in crashes if point == "after_fetch" else []:
        later = [r.at for r in runs.get(e["job_id"], [])
                 if r.event is Event.START and r.at > e["at"]]
        delays += [min(later) - e["at"]] if later else []
    figures.emit(
        f"3 crash {point}", **rec.figures(), faults=len(crashes), seconds=round(elapsed, 1),
        **summarise(delays),
    )
    rec.assert_ok()
    assert [e["point"] for e in crashes] == [point] * waves, crashes
    assert sorted(e["job_id"] for e in crashes) == sorted(targets)
    assert [code for _, code in fleet.exits] == [CRASH_EXIT] * waves

    for target in targets:
        job = await client.get(target)
        done = [r for r in runs.get(target, []) if r.event is Event.DONE]
        first = [r for r in runs.get(target, []) if r.attempt == 1]
        assert job.state is JobState.SUCCEEDED, job.model_dump_json(indent=1)
        if point == "after_ack":  # acknowledged before the crash: it counted, once
            assert job.attempts == 1 and outcomes(job) == ["succeeded"]
            assert len(done) == 1
            continue
        assert job.attempts == 2, job.model_dump_json(indent=1)
        assert outcomes(job) == ["lease_expired", "succeeded"]
        if point == "after_fetch":  # leased, never started
            assert first == []
        elif point == "mid_handler":  # started, never finished
            assert [r.event for r in first] == [Event.START]
        else:  # before_ack: the work was done twice, the first outcome never sent
            assert [r.event for r in first] == [Event.START, Event.DONE]
            assert target in rec.duplicated
        assert len(done) == (2 if point == "before_ack" else 1)


async def test_jobs_three_times_longer_than_the_lease_stay_single(
    scale: Scale, client: AsyncConveyor, main_broker: RedisBroker, workers: Workers,
    spec: WorkerSpec, ledger: Ledger, figures: Figures,
) -> None:
    """Scenario 6: heartbeats keep the lease of a job that runs 3.5x the lease: it is never
    redelivered, even with other workers idle and reaping every 0.2 s."""
    rng = random.Random(6)
    lease_s = scale.of(1.0, 2.0)
    long_jobs = scale.of(2, 12)
    spec = with_spec(spec, concurrency=scale.of(2, 6), lease_s=lease_s)
    await asyncio.gather(*(workers.start(spec) for _ in range(scale.of(2, 3))))
    started = time.monotonic()
    long_ms = int(lease_s * 3500)
    slow = [r.job_id for r in await client.enqueue_many(
        [JobRequest(WORK_TYPE, {"ms": long_ms}, QUEUE, max_attempts=5)] * long_jobs
    )]
    fast = await enqueue_work(client, scale.of(20, 1000), (10, 50), rng=rng)
    await wait_drained(client, len(slow) + len(fast), timeout_s=scale.of(60.0, 300.0))
    elapsed = time.monotonic() - started

    runs = ledger.by_job()
    rec = await reconcile(main_broker, QUEUE, slow + fast, runs)
    lost_leases = [e for w in workers.all for e in w.events("lease_lost")]
    figures.emit(
        "6 jobs 3.5x the lease", **rec.figures(), faults=0, long_jobs=long_jobs,
        job_s=long_ms / 1000, lease_s=lease_s, seconds=round(elapsed, 1), recover_max_s=None,
    )
    rec.assert_ok()
    assert not lost_leases, lost_leases
    for job_id in slow:
        job = await client.get(job_id)
        assert job.attempts == 1 and outcomes(job) == ["succeeded"], job.model_dump_json()
        assert [r.event for r in runs[job_id]] == [Event.START, Event.DONE]
    assert rec.duplicated == [] and rec.lease_expiries == 0


async def test_poison_job_ends_dead_with_lease_expired(
    scale: Scale, client: AsyncConveyor, main_broker: RedisBroker, workers: Workers,
    spec: WorkerSpec, ledger: Ledger, figures: Figures,
) -> None:
    """Scenario 7: a job whose handler kills its worker on every attempt ends DEAD with
    `lease_expired` after max_attempts deliveries; the healthy jobs around it all succeed."""
    rng = random.Random(7)
    max_attempts = 3
    poisons = scale.of(1, 4)
    spec = with_spec(spec, concurrency=scale.of(2, 4), lease_s=1.0)
    fleet = Fleet(workers, spec, scale.of(2, 3))
    await fleet.start()
    started = time.monotonic()
    bad = [r.job_id for r in await client.enqueue_many(
        [JobRequest(POISON_TYPE, None, QUEUE, max_attempts=max_attempts)] * poisons
    )]
    good = await enqueue_work(client, scale.of(30, 1000), (10, 50), rng=rng)
    await wait_drained(client, len(bad) + len(good), timeout_s=scale.of(60.0, 300.0))
    elapsed = time.monotonic() - started
    await fleet.stop_keeping()

    runs = ledger.by_job()
    rec = await reconcile(main_broker, QUEUE, bad + good, runs)
    figures.emit(
        "7 poison job", **rec.figures(), faults=len(fleet.exits), poison_jobs=poisons,
        max_attempts=max_attempts, seconds=round(elapsed, 1),
        **summarise(redelivery_delays(runs, crash_times(workers))),
    )
    rec.assert_ok()
    assert rec.dead == poisons and rec.succeeded == len(good)
    codes = [code for _, code in fleet.exits]
    assert set(codes) == {CRASH_EXIT}
    # Two poison jobs in one worker: the first kills both attempts, so with several poison
    # jobs a delivery may die without having run, and fewer workers die.
    assert max_attempts <= len(codes) <= poisons * max_attempts
    for job_id in bad:
        job = await client.get(job_id)
        assert job.state is JobState.DEAD, job.model_dump_json(indent=1)
        assert job.attempts == max_attempts
        assert job.last_error is not None and job.last_error.code == "lease_expired"
        assert outcomes(job) == ["lease_expired"] * (max_attempts - 1) + ["dead"]
        starts = [r for r in runs.get(job_id, []) if r.event is Event.START]
        assert len({r.pid for r in starts}) == len(starts)  # each run killed its worker
        if poisons == 1:
            assert [r.attempt for r in starts] == list(range(1, max_attempts + 1))
