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

What a job records costs well under a microsecond: the worker keeps plain numbers (`Hist`,
`JobSeries`: one object per (queue, type), found once per job and kept on its slot), and a
custom collector of the client library turns them into the same families at scrape time.
The library's own `Counter` / `Histogram` take a lock per update (a histogram two), ~2.5 µs
for the three updates of a job (docs/benchmarks.md, "Observability"). Only the worker's
event loop thread writes them; a scrape copies each list or dict in one C call (atomic under
the GIL), so it sees every finished update, at worst a histogram's sum one observation
ahead of its buckets. The gauges (slots, info) are the library's, read at scrape time.
"""

from __future__ import annotations

import contextlib
import ipaddress
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from time import perf_counter
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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


def _le(bound: float) -> str:
    le: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return le


class Hist:
    """One histogram's buckets and sum as plain numbers: an observation is a `bisect` and
    two additions, no lock (a `prometheus_client` histogram takes one lock per bucket and
    one for its sum: ~2 µs an observation). Written by the worker's event loop thread only;
    a scrape (the server's thread) copies it, so it may miss an observation in progress
    (its count and sum then disagree by that one observation until the next scrape)."""

    __slots__ = ("bounds", "counts", "les", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        #: the `le` label of each bucket, as the client library spells it
        self.les = [_le(b) for b in (*self.bounds, float("inf"))]
        #: per bucket, not cumulative; the last one is +Inf
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # first bound >= value: `le`
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative `(le, count)` pairs, +Inf last, as the exposition wants them."""
        counts = self.counts.copy()
        out: list[tuple[str, float]] = []
        total = 0
        for le, n in zip(self.les, counts, strict=True):
            total += n
            out.append((le, total))
        return out

    def empty(self) -> bool:
        return not any(self.counts)


class _Timer:
    """`with`: observes the block's duration (one object per use: re-entrant)."""

    __slots__ = ("_hist", "_start")

    def __init__(self, hist: Hist) -> None:
        self._hist = hist
        self._start = 0.0

    def __enter__(self) -> _Timer:
        self._start = perf_counter()
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._hist.observe(max(perf_counter() - self._start, 0.0))


class JobSeries:
    """What a worker records per (queue, type): one object, found once per job."""

    __slots__ = ("duration", "outcomes", "wait")

    def __init__(self) -> None:
        self.duration = Hist(DURATION_BUCKETS)
        self.wait = Hist(WAIT_BUCKETS)
        #: outcome -> count; an outcome never seen is not exported (as a counter child)
        self.outcomes: dict[str, int] = {}

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def waited(self, ms: int) -> None:
        """The queue wait of one attempt, in broker milliseconds (never below 0)."""
        self.wait.observe(ms / 1000 if ms > 0 else 0.0)


class _Families(Collector):
    """The hot families, read at scrape time from the plain numbers the worker keeps
    (a custom collector of the client library: same names, labels and types)."""

    def __init__(self, m: WorkerMetrics) -> None:
        self._m = m

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        return self._families()

    def _families(self) -> Iterator[Metric]:
        m = self._m
        series = list(m.series.items())
        jobs = CounterMetricFamily("conveyor_worker_jobs", "Job attempts ended, by broker "
                                   "outcome", labels=["queue", "type", "outcome"])
        duration = HistogramMetricFamily(
            "conveyor_worker_job_duration_seconds", "Handler run time of one attempt",
            labels=["queue", "type"])
        wait = HistogramMetricFamily(
            "conveyor_worker_queue_wait_seconds",
            "Start of an attempt minus the job's due time (broker clock)",
            labels=["queue", "type"])
        for (queue, type_), s in series:
            for outcome, n in list(s.outcomes.items()):
                jobs.add_metric([queue, type_, outcome], n)
            if not s.duration.empty():
                duration.add_metric([queue, type_], s.duration.buckets(), s.duration.sum)
            if not s.wait.empty():
                wait.add_metric([queue, type_], s.wait.buckets(), s.wait.sum)
        yield jobs
        yield duration
        yield wait
        yield _histograms("conveyor_worker_broker_call_seconds",
                          "Broker round trips made by the worker", "call", m.calls)
        yield _histograms("conveyor_worker_maintenance_seconds",
                          "Maintenance steps (per queue and tick)", "step", m.steps)
        expiries = CounterMetricFamily(
            "conveyor_worker_lease_expiries",
            "Expired leases this worker's maintenance reaped", labels=["queue", "outcome"])
        for (queue, outcome), n in list(m.expiries.items()):
            expiries.add_metric([queue, outcome], n)
        yield expiries


def _histograms(name: str, doc: str, label: str, hists: dict[str, Hist]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for value, hist in list(hists.items()):
        family.add_metric([value], hist.buckets(), hist.sum)
    return family


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        #: (queue, type) -> what its jobs did (see `JobSeries`)
        self.series: dict[tuple[str, str], JobSeries] = {}
        #: call -> round trip times; maintenance step -> times
        self.calls: dict[str, Hist] = {}
        self.steps: dict[str, Hist] = {}
        #: (queue, "requeued" | "dead") -> expired leases reaped
        self.expiries: dict[tuple[str, str], int] = {}
        r.register(_Families(self))
        self.slots = Gauge("conveyor_worker_slots", "Job slots of this worker", ["state"],
                           registry=r)
        self.info = Gauge("conveyor_worker_info", "Always 1: who this worker is",
                          ["worker_id", "queues"], registry=r)
        self._server: Any = None
        self._thread: Any = None
        self.url: str | None = None

    # --- recording: plain numbers, no lock (see `Hist`); from the event loop thread --------
    def job(self, queue: str, type_: str) -> JobSeries:
        """The series of one (queue, type), made at its first job."""
        s = self.series.get((queue, type_))
        if s is None:
            s = self.series[queue, type_] = JobSeries()
        return s

    def outcome(self, queue: str, type_: str, outcome: str) -> None:
        self.job(queue, type_).count(outcome)

    def ran(self, queue: str, type_: str, seconds: float) -> None:
        self.job(queue, type_).duration.observe(seconds)

    def waited(self, queue: str, type_: str, seconds: float) -> None:
        self.job(queue, type_).wait.observe(max(seconds, 0.0))

    def call(self, name: str) -> AbstractContextManager[object]:
        hist = self.calls.get(name)
        if hist is None:
            hist = self.calls[name] = Hist(CALL_BUCKETS)
        return _Timer(hist)

    def step(self, name: str) -> AbstractContextManager[object]:
        hist = self.steps.get(name)
        if hist is None:
            hist = self.steps[name] = Hist(CALL_BUCKETS)
        return _Timer(hist)

    def expired(self, queue: str, requeued: int, dead: int) -> None:
        for outcome, n in (("requeued", requeued), ("dead", dead)):
            if n:
                self.expiries[queue, outcome] = self.expiries.get((queue, outcome), 0) + n

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
