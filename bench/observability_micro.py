"""What one job's metrics and one attempt's span cost, in process (issue 18): the parts of
`bench.observability`'s per-job CPU that are ours, next to what the libraries cost for the
same work, without a worker, Redis or a second process (far less noisy on a busy machine).

    python -m bench.observability_micro [--n 20000] [--repeat 7]

Each figure is the best of --repeat timings of --n calls (CPU time of the process, the span
processor's thread included), in µs per call:
- metrics, ours: what a worker records per job (`JobSeries`: queue wait, duration, outcome);
- metrics, client library: the same three updates on `prometheus_client` children
  (looked up once, not counted: what the worker did before, less its per-job lookups);
- attempt span, batch / single / no stored context: `tracing.Attempt` around
  `job_context(**log_fields)`, as the runner and executor use them, the stored context of an
  `enqueue_many` (a link, parse cached), of a single enqueue (parsed each time: one per job)
  and none;
- SDK alone: `start_span` + `end` with the same seven attributes and no parent, and
  `job_context` alone (which every job pays, traced or not).
The SDK is the one of `bench.otel_app`: 100% sampling, spans batched to a dropping exporter.
`PYTHONPATH=<other tree>/src` runs the same cases on an older worker (before `JobSeries` and
`tracing.Attempt`: its per-job calls `waited` / `ran` / `outcome`, `consumer_span`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Counter, Histogram

import bench.otel_app  # noqa: F401  (the SDK, as the bench's traced worker runs it)
from conveyor import tracing
from conveyor.logging import job_context
from conveyor.worker.metrics import DURATION_BUCKETS, WAIT_BUCKETS, WorkerMetrics


def best_us(f: Callable[[], None], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        for _ in range(n):
            f()
        best = min(best, time.process_time() - t)
    return best / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=7)
    a = p.parse_args()

    ours = WorkerMetrics()

    def metrics_ours() -> None:
        series = ours.job("bench", "fake")
        series.waited(300)
        series.duration.observe(0.0001)
        series.count("succeeded")

    def metrics_ours_before() -> None:  # a source tree from before `JobSeries` (--before)
        ours.waited("bench", "fake", 0.3)
        ours.ran("bench", "fake", 0.0001)
        ours.outcome("bench", "fake", "succeeded")

    r = CollectorRegistry()
    wait = Histogram("w", "w", ["queue", "type"], buckets=WAIT_BUCKETS, registry=r)
    duration = Histogram("d", "d", ["queue", "type"], buckets=DURATION_BUCKETS, registry=r)
    jobs = Counter("j", "j", ["queue", "type", "outcome"], registry=r)
    children = {"wait": wait.labels("bench", "fake"), "ran": duration.labels("bench", "fake"),
                "ok": jobs.labels("bench", "fake", "succeeded")}

    def metrics_library() -> None:
        children["wait"].observe(0.3)
        children["ran"].observe(0.0001)
        children["ok"].inc()

    with tracing.producer_span("bench", "fake", None, count=1000) as batch:
        pass
    with tracing.producer_span("bench", "fake", "bench:1") as single:
        pass

    def attempt(stored: str, cached: bool = True) -> Callable[[], None]:
        def run() -> None:
            if not cached:
                tracing._parent.cache_clear()
            span = tracing.Attempt("bench", "fake", "bench:1", 1, stored)
            with span, job_context("bench:1", "fake", attempt=1, **span.log_fields):
                pass

        def run_before() -> None:  # a source tree from before `tracing.Attempt`
            if not cached:
                tracing._parent.cache_clear()
            with tracing.consumer_span("bench", "fake", "bench:1", 1, stored), \
                    job_context("bench:1", "fake", attempt=1, **tracing.log_fields()):
                pass
        return run if hasattr(tracing, "Attempt") else run_before

    tracer = trace.get_tracer("bench")
    attrs = {"messaging.system": "conveyor", "messaging.destination.name": "bench",
             "messaging.operation.type": "process", "messaging.operation.name": "process",
             "messaging.message.id": "bench:1", "conveyor.job.type": "fake",
             "conveyor.job.attempt": 1}

    def sdk_alone() -> None:
        tracer.start_span("process bench", kind=SpanKind.CONSUMER, attributes=attrs).end()

    def context_alone() -> None:
        with job_context("bench:1", "fake", attempt=1):
            pass

    cases: list[tuple[str, Callable[[], None]]] = [
        ("metrics per job, ours",
         metrics_ours if hasattr(ours, "job") else metrics_ours_before),
        ("metrics per job, client library", metrics_library),
        ("attempt span, batch context (link)", attempt(batch)),
        ("attempt span, single context (parsed)", attempt(single, cached=False)),
        ("attempt span, no stored context", attempt("")),
        ("SDK start_span + end alone, 7 attributes", sdk_alone),
        ("job_context alone (every job)", context_alone),
    ]
    for label, f in cases:
        print(f"{label:42s} {best_us(f, a.n, a.repeat):6.2f} µs", flush=True)


if __name__ == "__main__":
    main()
