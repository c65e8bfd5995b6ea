"""Workers fire schedules (issue 15): no leader, every worker's maintenance fires due ticks
ahead of time as delayed jobs, exactly one job per tick; declared schedules are synced at
start, idempotently (many workers starting at once change nothing, a pause is kept).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from conveyor.brokers.base import Broker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor
from conveyor.handlers import Registry
from conveyor.jobs import JobState
from conveyor.schedules import Schedule
from conveyor.schedules.declared import declared
from conveyor.timeutil import datetime_to_ms
from conveyor.worker import Worker
from conveyor.worker.schedules import ScheduleFirer, sync_declared
from tests.support.inproc import make_settings, running
from tests.worker.worker_helpers import QUEUE


@pytest.fixture(params=["redis", "sqlite"])
async def any_broker(request: pytest.FixtureRequest, broker: Broker,
                     tmp_path: Path) -> Any:
    if request.param == "redis":
        yield broker
        return
    b = SqliteBroker(tmp_path / "s.db")
    await b.connect()
    try:
        yield b
    finally:
        await b.close()


async def test_workers_fire_each_tick_once_and_start_it_at_its_tick(
    any_broker: Broker, registry: Registry,
) -> None:
    started: list[tuple[str, int]] = []

    @registry.handler("tick.task")
    async def task(payload: Any, ctx: Any) -> None:
        started.append((ctx.job_id, await any_broker.now_ms()))

    cv = AsyncConveyor(any_broker, registry=registry)
    await cv.schedules.put(Schedule.parse({"name": "every1", "every_s": 1,
                                           "job": {"type": "tick.task", "queue": QUEUE}}))
    settings = make_settings(reap_interval_s=0.2)
    workers = [Worker(any_broker, queues=[QUEUE], concurrency=2, registry=registry,
                      settings=settings, maintenance_hooks=[ScheduleFirer(registry)])
               for _ in range(3)]
    t0 = await any_broker.now_ms()
    async with running(workers[0]), running(workers[1]), running(workers[2]):
        while await any_broker.now_ms() < t0 + 3_500:  # noqa: ASYNC110  (the broker clock)
            await asyncio.sleep(0.05)
    jobs = (await cv.schedules.runs("every1", limit=1000)).items
    ticks = sorted(datetime_to_ms(j.schedule.tick) for j in jobs
                   if j.schedule is not None and j.schedule.tick is not None)
    assert len(ticks) == len(jobs) >= 3
    assert ticks == list(range(ticks[0], ticks[0] + 1000 * len(ticks), 1000))  # none doubled
    assert ticks[0] <= t0 + 1000  # none missing at the start
    ran = {job_id: at for job_id, at in started}
    assert len(ran) == len(started)  # each job ran once
    for j in jobs:
        assert j.schedule is not None and j.schedule.tick is not None
        tick = datetime_to_ms(j.schedule.tick)
        if j.id in ran:
            assert ran[j.id] >= tick  # never early
            assert j.state == JobState.SUCCEEDED
        else:  # fired ahead, its tick not come when the workers stopped
            assert j.state == JobState.SCHEDULED or tick >= t0 + 3_000
    view = await cv.schedules.get("every1")
    assert view.counts.fired == len(jobs) and view.counts.missed == 0


async def test_declared_schedules_sync_idempotently_and_keep_a_pause(
    any_broker: Broker, registry: Registry,
) -> None:
    @registry.handler("rep.build", schedule={"cron": "0 3 * * *", "timezone": "Europe/Dublin",
                                             "job": {"queue": QUEUE, "payload": {"a": 1}}})
    async def build(payload: Any, ctx: Any) -> None: ...

    @registry.handler("rep.clean", schedule="@hourly")
    async def clean(payload: Any, ctx: Any) -> None: ...

    registry.add_schedules(Schedule.parse({"name": "extra", "every_s": 90,
                                           "job": {"type": "rep.clean"}}))
    names = sorted(s.name for s in declared(registry))
    assert names == ["extra", "rep.build", "rep.clean"]
    results = await asyncio.gather(*(sync_declared(any_broker, registry) for _ in range(20)))
    outcomes = [r[n] for r in results for n in names]
    assert outcomes.count("created") == 3 and set(outcomes) == {"created", "same"}
    cv = AsyncConveyor(any_broker, registry=registry)
    view = await cv.schedules.get("rep.build")
    assert view.cron == "0 3 * * *" and view.timezone == "Europe/Dublin"
    assert view.job.type == "rep.build" and view.job.queue == QUEUE
    before = await cv.schedules.pause("rep.build")
    again = await sync_declared(any_broker, registry)
    assert set(again.values()) == {"same"}
    assert await cv.schedules.get("rep.build") == before  # still paused, nothing changed
