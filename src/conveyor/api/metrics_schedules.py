"""Schedule metrics for `/metrics` (issue 15), read from the broker at scrape time: ticks
fired, skipped and missed per schedule (the counts each schedule keeps, so every API process
reports the same totals), paused, and the lateness of each schedule's last run (when its job
started after its tick). Bounded: at most `MAX_SCHEDULES` schedules are read per scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.client import AsyncConveyor
from conveyor.errors import ConveyorError
from conveyor.schedules.service import ScheduleView
from conveyor.schedules.store import LIST_MAX
from conveyor.timeutil import datetime_to_ms

#: schedules a scrape reads at most (LIST_MAX per page)
MAX_SCHEDULES = 1000


class ScheduleGauges(Collector):
    def __init__(self) -> None:
        self.views: list[ScheduleView] = []
        #: schedule -> seconds from its last run's tick to its start
        self.lateness: dict[str, float] = {}

    async def refresh(self, client: AsyncConveyor) -> None:
        """Read the schedules and their last runs; on failure keep the previous reading."""
        try:
            views: list[ScheduleView] = []
            cursor = None
            while len(views) < MAX_SCHEDULES:
                page = await client.schedules.list(LIST_MAX, cursor)
                views += page.items
                cursor = page.next_cursor
                if cursor is None:
                    break
            runs = [(v.name, v.last_run) for v in views
                    if v.last_run is not None and v.last_run.tick is not None]
            jobs = await client.get_many([r.job_id for _, r in runs]) if runs else []
        except ConveyorError:
            return
        lateness: dict[str, float] = {}
        for (name, run), job in zip(runs, jobs, strict=True):
            if job is not None and job.started_at is not None and run is not None and (
                    run.tick is not None):
                first = job.history[0].started_at if job.history else None
                started = first or job.started_at
                lateness[name] = max(0, datetime_to_ms(started) - datetime_to_ms(run.tick)) / 1000
        self.views, self.lateness = views, lateness

    def collect(self) -> Iterator[Metric]:
        ticks = CounterMetricFamily(
            "conveyor_schedule_ticks", "Ticks of each schedule by outcome: fired (a job "
            "made), skipped (overlap), missed (came due while no worker ran)",
            labels=["schedule", "outcome"])
        paused = GaugeMetricFamily("conveyor_schedule_paused", "1 while the schedule is paused",
                                   labels=["schedule"])
        late = GaugeMetricFamily(
            "conveyor_schedule_lateness_seconds",
            "From the tick of the schedule's last run to the start of its job",
            labels=["schedule"])
        for v in self.views:
            ticks.add_metric([v.name, "fired"], v.counts.fired)
            ticks.add_metric([v.name, "skipped"], v.counts.skipped)
            ticks.add_metric([v.name, "missed"], v.counts.missed)
            paused.add_metric([v.name], 1 if v.paused else 0)
            if v.name in self.lateness:
                late.add_metric([v.name], self.lateness[v.name])
        yield ticks
        yield paused
        yield late

    def describe(self) -> Iterator[Metric]:
        return iter(())
