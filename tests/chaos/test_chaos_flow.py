"""Fault suite, flow control (issue 16): keys with `key_concurrency` 2 and `key_rate` 5/s,
4 workers, a SIGKILL every 2 s and one worker SIGSTOPped then SIGCONTed. The broker's own
record of every attempt (start and end on its clock; a permit is held from the lease to the
step that ends the attempt, reap included) shows at every instant at most 2 runs per key,
at most 5 + burst starts per key in every sliding 1 s window, no attempt charged by a limit,
and counters equal to the RUNNING jobs at the end (audit)."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import defaultdict
from datetime import datetime

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.flow import QueueLimits, Rate
from conveyor.jobs import Job
from tests.chaos.chaos_support import (
    QUEUE,
    WORK_TYPE,
    Figures,
    Fleet,
    Scale,
    Workers,
    WorkerSpec,
    wait_drained,
    with_spec,
)

KEY_CONCURRENCY = 2
RATE = Rate(count=5, per_s=1.0, burst=1)


def max_overlap(intervals: list[tuple[int, int]]) -> int:
    """The most intervals [start, end) open at one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = best = 0
    for _, step in edges:  # at a tie an end (-1) sorts first: [s, e) never touch
        now += step
        best = max(best, now)
    return best


def max_starts_in_window(starts: list[int], window_ms: int) -> int:
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while starts[lo] <= t - window_ms:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def ms(dt: datetime | None) -> int:
    assert dt is not None
    return round(dt.timestamp() * 1000)


async def test_key_limits_hold_under_kills_and_a_stopped_worker(
    scale: Scale, client: AsyncConveyor, main_broker: RedisBroker, workers: Workers,
    spec: WorkerSpec, figures: Figures,
) -> None:
    rng = random.Random(16)
    keys = scale.of(10, 500)  # short: 10 keys at 5/s each, so the run outlasts some kills
    total = scale.of(400, 5000)
    spec = with_spec(spec, concurrency=8, lease_s=1.0)
    await client.set_limits(QUEUE, QueueLimits(key_concurrency=KEY_CONCURRENCY, key_rate=RATE))
    fleet = Fleet(workers, spec, 4)
    await fleet.start()
    started = time.monotonic()
    results = await client.enqueue_many([
        JobRequest(WORK_TYPE, {"ms": rng.randint(20, 200)}, QUEUE, max_attempts=20,
                   limit_key=f"k{rng.randrange(keys)}")
        for _ in range(total)
    ])
    ids = [r.job_id for r in results]

    async def busy() -> bool:
        counts = (await client.stats([QUEUE]))[QUEUE]
        return counts["succeeded"] + counts["dead"] < total

    stopped = False
    while await busy() and time.monotonic() - started < scale.of(60, 900):
        await asyncio.sleep(2.0)  # the fault's cadence
        if not stopped:  # one worker frozen past its leases, then thawed
            victim = next(m for m in fleet.members if m.running() and m.has_started())
            victim.proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(2.5)
            victim.proc.send_signal(signal.SIGCONT)
            stopped = True
            continue
        await fleet.kill_one(rng.choice)
    await wait_drained(client, total, timeout_s=scale.of(120.0, 900.0))
    await fleet.stop_keeping()

    jobs = [j for j in await client.get_many(ids) if j is not None]
    assert len(jobs) == total
    by_key: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        assert job.limit_key is not None
        by_key[job.limit_key].append(job)
    worst_overlap = worst_window = 0
    for key, kjobs in by_key.items():
        runs = [(ms(h.started_at), ms(h.finished_at)) for j in kjobs for h in j.history
                if h.started_at is not None and h.finished_at is not None]
        overlap = max_overlap(runs)
        window = max_starts_in_window([s for s, _ in runs], 1000)
        worst_overlap, worst_window = max(worst_overlap, overlap), max(worst_window, window)
        assert overlap <= KEY_CONCURRENCY, (key, sorted(runs))
        assert window <= RATE.count + RATE.burst, (key, sorted(runs))
    for job in jobs:  # every charged attempt is a delivery that ran (kills included)
        delivered = [h for h in job.history if h.outcome != "released"]
        assert job.attempts == len(delivered), job
    report = await main_broker.audit(QUEUE)
    assert report.ok, report
    figures.emit("16 key limits under kills and a stopped worker", jobs=total, keys=keys,
                 kills=len(fleet.kills), worst_runs_per_key=worst_overlap,
                 worst_starts_per_key_1s=worst_window,
                 seconds=round(time.monotonic() - started, 1))
