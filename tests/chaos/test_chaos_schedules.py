"""Fault suite, schedules (issue 15): workers firing schedules are SIGKILLed every second
while concurrent upserts of the same schedules race at the start. For every tick in the
window exactly one job exists (none missing, none doubled) and each ends SUCCEEDED; every
schedule was created once and missed nothing.

Long (`-m chaos`): 4 workers, 20 schedules of 1-3 s, a SIGKILL every second for 60 s, 50
concurrent upserts of every schedule at the start. Short: 3 workers, 6 schedules, 8 s, 10
upserts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.jobs import JobState
from conveyor.schedules import Schedule, iter_ticks
from conveyor.timeutil import datetime_to_ms
from tests.chaos.chaos_support import QUEUE, WORK_TYPE, Figures, Fleet, Scale, Workers, WorkerSpec
from tests.chaos.ledger import Event, Ledger
from tests.support.waits import wait_until

#: how long before `created_at` the upsert may have read the clock it counts ticks from
SAVE_MS = 500


async def test_schedules_fire_once_per_tick_through_sigkills_and_racing_upserts(
    scale: Scale, client: AsyncConveyor, main_broker: RedisBroker, workers: Workers,
    spec: WorkerSpec, ledger: Ledger, figures: Figures,
) -> None:
    rng = random.Random(15)
    size = scale.of(3, 4)
    count = scale.of(6, 20)
    duration_ms = scale.of(8_000, 60_000)
    upserts = scale.of(10, 50)
    schedules = [
        Schedule.parse({"name": f"chaos-s{i:02d}", "every_s": rng.choice([1, 2, 3]),
                        "catch_up": "all",
                        "job": {"type": WORK_TYPE, "queue": QUEUE, "payload": {"ms": 0},
                                "max_attempts": 20}})
        for i in range(count)
    ]
    fleet = Fleet(workers, spec, size)
    await fleet.start()

    # many processes' worth of upserts of the same schedules, all at once
    outcomes = await asyncio.gather(*(client.schedules.sync(schedules) for _ in range(upserts)))
    created = Counter(name for o in outcomes for name, what in o.items() if what == "created")
    assert created == {s.name: 1 for s in schedules}
    assert {what for o in outcomes for what in o.values()} <= {"created", "same"}

    start_ms = await main_broker.now_ms()
    end_ms = start_ms + duration_ms
    while await main_broker.now_ms() < end_ms:
        await asyncio.sleep(1.0)  # the fault's cadence, not a wait for a condition
        await fleet.kill_one(rng.choice)

    # Every tick after the schedule was created, up to the end of the window. The first
    # tick is counted from the broker's clock read just before the upsert's script: a tick
    # at most SAVE_MS before `created_at` may be the schedule's first, or not.
    views = {v.name: v for v in (await client.schedules.list(100)).items}
    expected: dict[str, list[int]] = {}
    optional: dict[str, set[int]] = {}
    for s in schedules:
        created_ms = datetime_to_ms(views[s.name].created_at)
        ticks = []
        for t in iter_ticks(s.timing(), created_ms - SAVE_MS):
            if t > end_ms:
                break
            ticks.append(t)
        expected[s.name] = [t for t in ticks if t > created_ms]
        optional[s.name] = {t for t in ticks if t <= created_ms}

    async def all_done() -> dict[str, list[tuple[int, JobState]]] | None:
        found: dict[str, list[tuple[int, JobState]]] = {}
        for s in schedules:
            jobs = (await client.schedules.runs(s.name, limit=1000)).items
            found[s.name] = sorted(
                (datetime_to_ms(j.schedule.tick), j.state) for j in jobs
                if j.schedule is not None and j.schedule.tick is not None
                and datetime_to_ms(j.schedule.tick) <= end_ms)
            if len(found[s.name]) < len(expected[s.name]):
                return None  # not all fired yet
            if any(st != JobState.SUCCEEDED for _, st in found[s.name]):
                return None
        return found

    started = time.monotonic()
    found = await wait_until(all_done, "every tick's job to succeed", scale.of(60.0, 300.0))
    await fleet.stop_keeping()
    for s in schedules:
        ticks = [t for t, _ in found[s.name]]
        want = sorted({*expected[s.name], *(optional[s.name] & set(ticks))})
        assert ticks == want, (s.name, sorted(set(want) - set(ticks)),
                               [t for t, n in Counter(ticks).items() if n > 1])
    after = {v.name: v for v in (await client.schedules.list(100)).items}
    assert all(v.counts.missed == 0 and v.counts.skipped == 0 for v in after.values())
    runs = ledger.by_job()
    total_ticks = sum(len(t) for t in expected.values())
    figures.emit(
        "schedules_sigkill", workers=size, schedules=count, window_s=duration_ms / 1000,
        kills=len(fleet.kills), restarts=fleet.restarts(), upserts=upserts * count,
        ticks=total_ticks, jobs=sum(len(f) for f in found.values()), missing=0, doubled=0,
        job_starts=sum(1 for rs in runs.values() for r in rs if r.event == Event.START),
        drain_s=round(time.monotonic() - started, 2),
    )
