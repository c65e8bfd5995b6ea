"""What observability costs (issue 18): processing throughput of one worker process with
worker metrics off and on (`--metrics-port 0`), and with OpenTelemetry at 100% sampling
(spans made for the enqueue and every attempt, batched to an exporter that drops them).

    python -m bench.observability [--redis URL] [--jobs 20000] [--runs 3]

Each run enqueues the jobs into a paused queue, starts `conveyor worker` (concurrency 64),
resumes the queue and times until all succeeded. Configurations are interleaved run by run
(base, metrics, otel, base, ...) so a noisy machine hurts all alike; the median is reported.
Goals: metrics at most 3% slower, OpenTelemetry at most 10%.

The producer (this process) runs the SDK throughout, so every job carries a trace context;
the `base` and `metrics` workers run as if OpenTelemetry were not installed (a
`sitecustomize` hides it), the `otel` worker with the SDK (`--app bench.otel_app`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench.otel_app  # noqa: F401  (the producer's SDK: every job stores a trace context)
from bench.core import QUEUE, ROOT, cleanup, client, stop_worker, wait_worker
from conveyor.client import JobRequest
from conveyor.jobs import JobState

CONFIGS: dict[str, tuple[list[str], str]] = {
    "base": ([], "bench.handlers"),
    "metrics": (["--metrics-port", "0"], "bench.handlers"),
    "otel": ([], "bench.otel_app"),
}


HIDE_OTEL = Path(tempfile.mkdtemp(prefix="conveyor-bench-")) / "sitecustomize.py"
HIDE_OTEL.write_text("import sys\nsys.modules['opentelemetry'] = None\n")


def start(url: str, prefix: str, args: list[str], app: str) -> subprocess.Popen[bytes]:
    path = [str(ROOT)] if app == "bench.otel_app" else [str(HIDE_OTEL.parent), str(ROOT)]
    env = dict(os.environ, CONVEYOR_BROKER_URL=url, CONVEYOR_KEY_PREFIX=prefix,
               CONVEYOR_LOG_LEVEL="WARNING", PYTHONPATH=os.pathsep.join(path))
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "--queues", QUEUE, "--concurrency", "64",
         "--app", app, *args], env=env, cwd=ROOT)


async def one_run(url: str, config: str, n: int) -> float:
    args, app = CONFIGS[config]
    c = await client(url)
    prefix = c.broker.keys.prefix  # type: ignore[attr-defined]
    await c.pause(QUEUE)
    for i in range(0, n, 1000):
        await c.enqueue_many([JobRequest("fake", {}, queue=QUEUE)] * min(1000, n - i))
    proc = start(url, prefix, args, app)
    try:
        await wait_worker(c)
        t = time.perf_counter()
        await c.resume(QUEUE)
        while (await c.stats([QUEUE]))[QUEUE][JobState.SUCCEEDED] < n:
            await asyncio.sleep(0.01)
            if proc.poll() is not None:
                raise RuntimeError("worker exited")
        return n / (time.perf_counter() - t)
    finally:
        stop_worker(proc)
        await cleanup(c)


async def main_async(url: str, n: int, runs: int, only: list[str]) -> None:
    results: dict[str, list[float]] = {name: [] for name in only}
    for r in range(runs):
        for name in only:
            rate = await one_run(url, name, n)
            results[name].append(rate)
            print(f"run {r + 1} {name}: {rate:,.0f} jobs/s", flush=True)
    base = statistics.median(results["base"]) if "base" in results else None
    for name, rates in results.items():
        med = statistics.median(rates)
        rel = f"  ({(med / base - 1) * 100:+.1f}% vs base)" if base and name != "base" else ""
        print(f"{name:8s} median {med:,.0f} jobs/s (min {min(rates):,.0f}, max "
              f"{max(rates):,.0f}){rel}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--jobs", type=int, default=20000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    a = p.parse_args()
    asyncio.run(main_async(a.redis, a.jobs, a.runs, a.only))


if __name__ == "__main__":
    main()
