"""Prometheus metrics: request counts and latency per route (an ASGI middleware), and gauges
of jobs per queue and state, read from the broker when `/metrics` is scraped.

Each app has its own registry, so several apps (tests, embedded use) never collide. Routes
are labelled by their template (`/v1/jobs/{id}`), never by the raw path, to bound cardinality.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.client import AsyncConveyor
from conveyor.errors import ConveyorError

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "conveyor_api_requests", "HTTP requests answered",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "conveyor_api_request_duration_seconds", "Time to answer an HTTP request",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.queue_jobs = Gauge(
            "conveyor_queue_jobs", "Jobs per queue and state (read at scrape time)",
            ["queue", "state"], registry=self.registry,
        )
        self.queue_paused = Gauge(
            "conveyor_queue_paused", "1 while the queue is paused", ["queue"],
            registry=self.registry,
        )
        self.broker_up = Gauge(
            "conveyor_broker_up", "1 when the broker answered the last scrape",
            registry=self.registry,
        )
        self._counters: dict[tuple[str, str, str], Counter] = {}
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
            stats = await client.stats()
            paused = await asyncio.gather(*(client.is_paused(q) for q in stats))
        except ConveyorError:
            self.broker_up.set(0)
            return
        self.queue_jobs.clear()
        self.queue_paused.clear()
        for (queue, counts), is_paused in zip(stats.items(), paused, strict=True):
            for state, count in counts.items():
                self.queue_jobs.labels(queue, state).set(count)
            self.queue_paused.labels(queue).set(1 if is_paused else 0)
        self.broker_up.set(1)

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
