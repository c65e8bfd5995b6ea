"""The worker's hot metric families (issue 18) are kept as plain numbers and exported by a
custom collector: what a scrape reads must be what the client library's own `Counter` and
`Histogram` would have exported for the same updates (bucket edges included), and a scrape
running in another thread while the worker records must neither fail nor lose an update."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from conveyor.worker.metrics import CALL_BUCKETS, DURATION_BUCKETS, WAIT_BUCKETS, WorkerMetrics

#: below, on and just above every kind of edge, and beyond the last bound
VALUES = [0.0, 1e-9, 0.005, 0.0050001, 0.1, 0.7, 1.0, 2.5, 59.9, 60.0, 3600.0, 1e6]


def samples(registry: CollectorRegistry, prefix: str) -> dict[tuple[str, tuple[tuple[str, str],
                                                                              ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples
            if s.name.startswith(prefix) and not s.name.endswith("_created")}


def test_histograms_and_counters_match_the_client_library() -> None:
    ours = WorkerMetrics()
    ref = CollectorRegistry()
    duration = Histogram("conveyor_worker_job_duration_seconds", "d", ["queue", "type"],
                         buckets=DURATION_BUCKETS, registry=ref)
    wait = Histogram("conveyor_worker_queue_wait_seconds", "w", ["queue", "type"],
                     buckets=WAIT_BUCKETS, registry=ref)
    jobs = Counter("conveyor_worker_jobs", "j", ["queue", "type", "outcome"], registry=ref)
    calls = Histogram("conveyor_worker_broker_call_seconds", "c", ["call"],
                      buckets=CALL_BUCKETS, registry=ref)
    for i, value in enumerate(VALUES):
        type_ = "a" if i % 3 else "b"
        ours.ran("q", type_, value)
        duration.labels("q", type_).observe(value)
        ours.waited("q", type_, value - 0.5)  # a negative wait counts as 0
        wait.labels("q", type_).observe(max(value - 0.5, 0.0))
        ours.outcome("q", type_, "succeeded" if i % 2 else "failed")
        jobs.labels("q", type_, "succeeded" if i % 2 else "failed").inc()
    ours.job("q", "c").wait.observe(0.1)  # a series seen only by its wait
    wait.labels("q", "c").observe(0.1)
    for name in ("conveyor_worker_job_duration", "conveyor_worker_queue_wait",
                 "conveyor_worker_jobs"):
        got, want = samples(ours.registry, name), samples(ref, name)
        assert got == want, name
        assert got  # the comparison compared something
    hist = ours.job("q", "a").duration
    assert sum(hist.counts) == len([i for i in range(len(VALUES)) if i % 3])

    with ours.call("fetch"):
        pass
    with calls.labels("fetch").time():
        pass
    got = samples(ours.registry, "conveyor_worker_broker_call_seconds")
    want = samples(ref, "conveyor_worker_broker_call_seconds")
    assert got.keys() == want.keys()
    assert got[("conveyor_worker_broker_call_seconds_count", (("call", "fetch"),))] == 1


def test_a_scrape_in_another_thread_loses_nothing() -> None:
    m = WorkerMetrics()
    n = 100_000
    stop = threading.Event()
    scrapes = 0
    errors: list[BaseException] = []

    def scrape() -> None:
        nonlocal scrapes
        while not stop.is_set():
            try:
                generate_latest(m.registry)
            except BaseException as exc:  # reported below
                errors.append(exc)
                return
            scrapes += 1

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        for i in range(n):
            t = f"t{i // 200}"  # new series appear while scrapes iterate them
            series = m.job("q", t)
            series.duration.observe(0.001 * (i % 7))
            series.count("succeeded")
    finally:
        stop.set()
        thread.join(10)
    assert errors == []
    assert scrapes > 0
    text = generate_latest(m.registry).decode()
    count = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("conveyor_worker_job_duration_seconds_count"))
    assert count == n
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("conveyor_worker_jobs_total"))
    assert total == n
