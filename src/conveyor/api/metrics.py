"""Prometheus metrics: request counts and latency per route (an ASGI middleware), and gauges
of jobs per queue and state, read from the broker when `/metrics` is scraped.

Each app has its own registry, so several apps (tests, embedded use) never collide. Routes
are labelled by their template (`/v1/jobs/{id}`), never by the raw path, to bound cardinality.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api.metrics_schedules import ScheduleGauges
from conveyor.brokers.base import WorkerInfo
from conveyor.client import AsyncConveyor
from conveyor.errors import ConveyorError

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class QueueGauges(Collector):
    """`conveyor_queue_jobs` and `conveyor_queue_paused` from the last broker read, built
    at scrape time (a labelled Gauge child per queue and state cost ~1 s per 10,000 queues)."""

    def __init__(self) -> None:
        self.stats: dict[str, dict[str, int]] = {}
        self.paused: set[str] = set()
        #: flow control: jobs waiting behind limits, and holds per reason (counters)
        self.limited: dict[str, int] = {}
        self.held: dict[str, dict[str, int]] = {}
        #: per queue: seconds the oldest ready job has waited, live workers, their slots and
        #: the slots busy with its jobs (the autoscaling signals)
        self.ages: dict[str, float] = {}
        self.workers: Counter[str] = Counter()
        self.slots: Counter[str] = Counter()
        self.busy: Counter[str] = Counter()

    def set_workers(self, workers: list[WorkerInfo]) -> None:
        self.workers, self.slots, self.busy = Counter(), Counter(), Counter()
        for w in workers:
            for q in w.queues:
                self.workers[q] += 1
                self.slots[q] += w.concurrency
            for job_id in w.jobs:
                queue, sep, _ = str(job_id).rpartition(":")
                if sep:
                    self.busy[queue] += 1

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("conveyor_queue_jobs",
                                 "Jobs per queue and state (read at scrape time)",
                                 labels=["queue", "state"])
        paused = GaugeMetricFamily("conveyor_queue_paused", "1 while the queue is paused",
                                   labels=["queue"])
        age = GaugeMetricFamily(
            "conveyor_queue_oldest_ready_age_seconds",
            "Seconds the job waiting longest for a worker has been due (0: none waits)",
            labels=["queue"])
        workers = GaugeMetricFamily("conveyor_queue_workers", "Live workers serving the queue",
                                    labels=["queue"])
        slots = GaugeMetricFamily("conveyor_queue_worker_slots",
                                  "Job slots of the live workers serving the queue",
                                  labels=["queue"])
        busy = GaugeMetricFamily("conveyor_queue_busy_slots",
                                 "Slots running (or finishing) a job of the queue",
                                 labels=["queue"])
        for queue, counts in self.stats.items():
            for state, count in counts.items():
                jobs.add_metric([queue, state], count)
            paused.add_metric([queue], 1 if queue in self.paused else 0)
            age.add_metric([queue], self.ages.get(queue, 0.0))
            workers.add_metric([queue], self.workers[queue])
            slots.add_metric([queue], self.slots[queue])
            busy.add_metric([queue], self.busy[queue])
        yield jobs
        yield paused
        yield age
        yield workers
        yield slots
        yield busy
        limited = GaugeMetricFamily("conveyor_queue_limited",
                                    "QUEUED jobs waiting behind the queue's limits",
                                    labels=["queue"])
        held = CounterMetricFamily("conveyor_flow_held",
                                   "Times a limit held work back at a fetch, per reason",
                                   labels=["queue", "reason"])
        for queue, n in self.limited.items():
            limited.add_metric([queue], n)
        for queue, reasons in self.held.items():
            for reason, n in reasons.items():
                held.add_metric([queue, reason], n)
        yield limited
        yield held

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families are known only at scrape time


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = PromCounter(
            "conveyor_api_requests", "HTTP requests answered",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "conveyor_api_request_duration_seconds", "Time to answer an HTTP request",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.queues = QueueGauges()
        self.registry.register(self.queues)
        self.schedules = ScheduleGauges()  # issue 15
        self.registry.register(self.schedules)
        self.broker_up = Gauge(
            "conveyor_broker_up", "1 when the broker answered the last scrape",
            registry=self.registry,
        )
        self._counters: dict[tuple[str, str, str], PromCounter] = {}
        self._timers: dict[tuple[str, str], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # Cached children: labels() takes a lock and builds a key on every call.
        key = (method, route, str(status))
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(*key)
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[method, route] = self.latency.labels(method, route)
        counter.inc()
        timer.observe(seconds)

    async def refresh(self, client: AsyncConveyor) -> None:
        """Set the queue gauges from the broker; on failure mark the broker down."""
        try:
            stats = await client.stats()  # pipelined, whatever the number of queues
            paused = await client.paused_queues(list(stats))
            ages = await client.ready_ages(list(stats))  # pipelined too
            workers = await client.workers()
            limited = await client.limited_counts(list(stats))
            held = await client.held_counts(list(stats))
        except ConveyorError:
            self.broker_up.set(0)
            return
        self.queues.stats, self.queues.paused, self.queues.ages = stats, paused, ages
        self.queues.set_workers(workers)
        self.queues.limited, self.queues.held = limited, held
        self.broker_up.set(1)
        await self.schedules.refresh(client)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - start)
