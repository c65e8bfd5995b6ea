"""What observability costs (issue 18): processing throughput of one worker process with
worker metrics off and on (`--metrics-port 0`), and with OpenTelemetry at 100% sampling
(spans made for the enqueue and every attempt, batched to an exporter that drops them).

    python -m bench.observability [--redis URL] [--jobs 20000] [--runs 3] [--only NAME ...]
        [--before DIR] [--single]

Each run enqueues the jobs into a paused queue, starts `conveyor worker` (concurrency 64),
resumes the queue and times until all succeeded. Configurations are interleaved run by run,
each run starting one configuration later (base, metrics, otel; metrics, otel, base; ...), so
a noisy machine hurts all alike; the median is reported.
Goals: metrics at most 3% slower, OpenTelemetry at most 10%.

The producer (this process) runs the SDK throughout, so every job carries a trace context;
the `base` and `metrics` workers run as if OpenTelemetry were not installed (a
`sitecustomize` hides it), the `otel` worker with the SDK (`--app bench.otel_app`).
Jobs are enqueued by `enqueue_many` (their attempts link to the batch's span, one stored
context per 1,000 jobs) unless `--single` (one PRODUCER span and context per job, the
attempt its child). `NAME-before` runs the worker of another source tree (`--before`),
compared with `base-before`. `--body rtt` gives each job the round trip of `bench.compare`
(b') (one pipelined SET + GET to the same Redis over the job's own connection) instead of
a no-op: what the cost is against a job that does one network call; `--body sleep` a
10 ms wait (an I/O-bound job: the rate is bounded by the 64 slots, compare the CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import bench.otel_app  # noqa: F401  (the producer's SDK: every job stores a trace context)
from bench.core import ProcessRun, process_run

CONFIGS: dict[str, tuple[list[str], str]] = {
    "base": ([], "bench.handlers"),
    "metrics": (["--metrics-port", "0"], "bench.handlers"),
    "otel": ([], "bench.otel_app"),
}
# the worker from another source tree (--before), to compare before and after in one run
CONFIGS.update({f"{name}-before": config for name, config in list(CONFIGS.items())})


HIDE_OTEL = Path(tempfile.mkdtemp(prefix="conveyor-bench-")) / "sitecustomize.py"
HIDE_OTEL.write_text("import sys\nsys.modules['opentelemetry'] = None\n")


async def one_run(url: str, config: str, n: int, before: str | None, single: bool,
                  body: str | None = None) -> ProcessRun:
    args, app = CONFIGS[config]
    path = [] if app == "bench.otel_app" else [str(HIDE_OTEL.parent)]
    if config.endswith("-before"):
        if before is None:
            raise SystemExit(f"{config} needs --before DIR")
        path.insert(0, before)
    if body is None:
        return await process_run(url, n, 64, single=single, app=app, args=args, path=path)
    return await process_run(url, n, 64, single=single, job_type=f"bench.{body}", app=app,
                             args=args, path=path, env={"BENCH_REDIS_URL": url})


async def main_async(url: str, n: int, runs: int, only: list[str], before: str | None,
                     single: bool, body: str | None = None) -> None:
    results: dict[str, list[ProcessRun]] = {name: [] for name in only}
    for r in range(runs):
        # each run starts one configuration later: on a loaded machine the order counts
        for name in only[r % len(only):] + only[:r % len(only)]:
            run = await one_run(url, name, n, before, single, body)
            results[name].append(run)
            print(f"run {r + 1} {name}: {run.rate:,.0f} jobs/s, worker CPU "
                  f"{run.worker_cpu_us:.1f} µs/job", flush=True)
    figures: list[tuple[str, Callable[[ProcessRun], float], bool, str]] = [
        ("jobs/s", lambda x: x.rate, False, ",.0f"),
        ("worker CPU µs/job", lambda x: x.worker_cpu_us, True, ".1f")]
    for label, get, more_is_worse, fmt in figures:
        for name, runs_of in results.items():
            # each configuration against the base of its own source tree
            own = "base-before" if name.endswith("-before") else "base"
            base = statistics.median(map(get, results[own])) if own in results else None
            vals = [get(x) for x in runs_of]
            med = statistics.median(vals)
            rel = ""
            if base and name != own:
                cost = med / base - 1 if more_is_worse else 1 - med / base
                rel = f"  (costs {cost * 100:+.1f}% vs {own})"
            print(f"{name:14s} median {med:{fmt}} {label} (min {min(vals):{fmt}}, max "
                  f"{max(vals):{fmt}}){rel}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--jobs", type=int, default=20000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", nargs="*", default=["base", "metrics", "otel"],
                   choices=list(CONFIGS))
    p.add_argument("--before", help="another source tree (its src/) for the *-before configs"
                   " (`git archive <commit> src | tar -x -C /tmp/x`: /tmp/x/src)")
    p.add_argument("--single", action="store_true",
                   help="enqueue the jobs one by one, not by enqueue_many: with tracing, a "
                   "stored context per job (its parse not shared) instead of one per batch")
    p.add_argument("--body", choices=["rtt", "sleep"], default=None,
                   help="jobs with a body (rtt: one Redis round trip of their own; sleep: "
                   "10 ms of I/O wait), not no-ops")
    a = p.parse_args()
    asyncio.run(main_async(a.redis, a.jobs, a.runs, a.only, a.before, a.single, a.body))


if __name__ == "__main__":
    main()
