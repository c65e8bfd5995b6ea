"""Prometheus metrics of one worker process, served on their own port when asked for
(`conveyor worker --metrics-port N`, off by default).

Each worker has its own `CollectorRegistry` (never the global one), so several workers in one
process (tests, `conveyor dev`) never collide. The server binds loopback unless told
otherwise, and port 0 takes a free port that the worker registry shows (`metrics_url`), so two
workers on one host never clash (dramatiq#280, #309 are the failures avoided here).

Outcomes are counted when the broker answered them, so `conveyor_worker_jobs_total` says
what happened, not what a handler returned: `succeeded` (ack accepted), `failed` (attempt
failed, job retried), `dead`, `released` (graceful stop), `lease_lost` (the heartbeat, ack
or fail found the lease gone).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0, 900.0, 3600.0)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                21600.0, 86400.0)
CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0)
#: the outcomes of `conveyor_worker_jobs_total`
OUTCOMES = ("succeeded", "failed", "dead", "released", "lease_lost")
#: every family a worker exports (the ops test checks alert rules against this list)
FAMILIES = (
    "conveyor_worker_jobs_total", "conveyor_worker_job_duration_seconds",
    "conveyor_worker_queue_wait_seconds", "conveyor_worker_slots",
    "conveyor_worker_broker_call_seconds", "conveyor_worker_maintenance_seconds",
    "conveyor_worker_lease_expiries_total", "conveyor_worker_info",
)

_NULL: AbstractContextManager[object] = contextlib.nullcontext()


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Counter("conveyor_worker_jobs", "Job attempts ended, by broker outcome",
                            ["queue", "type", "outcome"], registry=r)
        self.duration = Histogram(
            "conveyor_worker_job_duration_seconds", "Handler run time of one attempt",
            ["queue", "type"], buckets=DURATION_BUCKETS, registry=r)
        self.wait = Histogram(
            "conveyor_worker_queue_wait_seconds",
            "Start of an attempt minus the job's due time (broker clock)",
            ["queue", "type"], buckets=WAIT_BUCKETS, registry=r)
        self.slots = Gauge("conveyor_worker_slots", "Job slots of this worker", ["state"],
                           registry=r)
        self.calls = Histogram(
            "conveyor_worker_broker_call_seconds", "Broker round trips made by the worker",
            ["call"], buckets=CALL_BUCKETS, registry=r)
        self.maintenance = Histogram(
            "conveyor_worker_maintenance_seconds", "Maintenance steps (per queue and tick)",
            ["step"], buckets=CALL_BUCKETS, registry=r)
        self.expiries = Counter(
            "conveyor_worker_lease_expiries", "Expired leases this worker's maintenance reaped",
            ["queue", "outcome"], registry=r)
        self.info = Gauge("conveyor_worker_info", "Always 1: who this worker is",
                          ["worker_id", "queues"], registry=r)
        self._children: dict[tuple[int, ...] | tuple[Any, ...], Any] = {}
        self._server: Any = None
        self._thread: Any = None
        self.url: str | None = None

    # --- recording (cached children: labels() takes a lock and builds a key every call) ----
    def _child(self, family: Any, *labels: str) -> Any:
        key = (id(family), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    def outcome(self, queue: str, type_: str, outcome: str) -> None:
        self._child(self.jobs, queue, type_, outcome).inc()

    def ran(self, queue: str, type_: str, seconds: float) -> None:
        self._child(self.duration, queue, type_).observe(seconds)

    def waited(self, queue: str, type_: str, seconds: float) -> None:
        self._child(self.wait, queue, type_).observe(max(seconds, 0.0))

    def call(self, name: str) -> AbstractContextManager[object]:
        timer: AbstractContextManager[object] = self._child(self.calls, name).time()
        return timer

    def step(self, name: str) -> AbstractContextManager[object]:
        timer: AbstractContextManager[object] = self._child(self.maintenance, name).time()
        return timer

    def expired(self, queue: str, requeued: int, dead: int) -> None:
        if requeued:
            self._child(self.expiries, queue, "requeued").inc(requeued)
        if dead:
            self._child(self.expiries, queue, "dead").inc(dead)

    def watch_slots(self, busy: Callable[[], int], free: Callable[[], int]) -> None:
        """Read at scrape time (the server's thread): two integers, no lock needed."""
        self.slots.labels("busy").set_function(busy)
        self.slots.labels("free").set_function(free)

    def describe_worker(self, worker_id: str, queues: list[str]) -> None:
        self.info.labels(worker_id, ",".join(queues)).set(1)

    # --- serving --------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> str:
        """Start the HTTP server (a daemon thread); returns its URL, with the real port."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = self._server.server_address[1]
        shown = f"[{host}]" if _is_ipv6(host) else host
        self.url = f"http://{shown}:{bound}/metrics"
        return self.url

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def call_timer(metrics: WorkerMetrics | None, name: str) -> AbstractContextManager[object]:
    """Times a broker call when metrics are on; a shared no-op otherwise."""
    return _NULL if metrics is None else metrics.call(name)


def step_timer(metrics: WorkerMetrics | None, name: str) -> AbstractContextManager[object]:
    return _NULL if metrics is None else metrics.step(name)


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False
