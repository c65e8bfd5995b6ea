"""Core benchmark of Conveyor on the local Redis (issue 2's speed goals).

    python -m bench.core [--redis redis://127.0.0.1:6379/0] [--runs 3] [--only NAME ...]

Measures: (a) enqueue one by one, sequential and with 50 concurrent producers; (b)
`enqueue_many` in batches of 1,000; (c) 20,000 queued no-op `fake` jobs processed by one
worker process (`conveyor worker`, concurrency 64); (d) enqueue-to-start latency at a low
steady rate; (e) lateness of jobs delayed by 1 s. Each figure is the median of --runs runs,
with min and max. Every run uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import JobState

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def client(url: str) -> AsyncConveyor:
    import bench.handlers  # noqa: F401  (registers bench.* types for validation)

    c = AsyncConveyor.from_url(url, key_prefix="cvbench-" + uuid.uuid4().hex[:8])
    await c.connect()
    return c


async def cleanup(c: AsyncConveyor) -> None:
    broker = c.broker
    redis = broker.client  # type: ignore[attr-defined]
    prefix = broker.keys.prefix  # type: ignore[attr-defined]
    keys = [k async for k in redis.scan_iter(match=prefix + ":*", count=5000)]
    for i in range(0, len(keys), 5000):
        await redis.delete(*keys[i : i + 5000])
    await c.close()


async def enqueue_seq(url: str, n: int = 5000) -> float:
    c = await client(url)
    try:
        t = time.perf_counter()
        for _ in range(n):
            await c.enqueue("fake", {}, queue=QUEUE)
        return n / (time.perf_counter() - t)
    finally:
        await cleanup(c)


async def enqueue_concurrent(url: str, n: int = 20000, producers: int = 50) -> float:
    c = await client(url)
    try:
        async def producer(k: int) -> None:
            for _ in range(k):
                await c.enqueue("fake", {}, queue=QUEUE)

        t = time.perf_counter()
        await asyncio.gather(*(producer(n // producers) for _ in range(producers)))
        return n / (time.perf_counter() - t)
    finally:
        await cleanup(c)


async def enqueue_batched(url: str, n: int = 200_000, batch: int = 1000) -> float:
    c = await client(url)
    try:
        reqs = [JobRequest("fake", {}, queue=QUEUE) for _ in range(batch)]
        t = time.perf_counter()
        for _ in range(n // batch):
            await c.enqueue_many(reqs)
        return n / (time.perf_counter() - t)
    finally:
        await cleanup(c)


def start_worker(url: str, prefix: str, concurrency: int, *, app: str = "bench.handlers",
                 args: Sequence[str] = (), path: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`conveyor worker` on the queue; `path` goes before the repository on its import path,
    `env` over this process's environment."""
    full = dict(os.environ, **(env or {}), CONVEYOR_BROKER_URL=url, CONVEYOR_KEY_PREFIX=prefix,
                CONVEYOR_LOG_LEVEL="WARNING", PYTHONPATH=os.pathsep.join([*path, str(ROOT)]))
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "--queues", QUEUE,
         "--concurrency", str(concurrency), "--app", app, *args],
        env=full, cwd=ROOT,
    )


async def wait_worker(c: AsyncConveyor, deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while not await c.workers():
        if time.monotonic() > end:
            raise RuntimeError("worker did not register")
        await asyncio.sleep(0.05)


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def server_cpu_us(c: AsyncConveyor) -> float:
    """The Redis server's own CPU time so far, µs (INFO cpu, user + sys: server-wide)."""
    info = await c.broker.client.info("cpu")  # type: ignore[attr-defined]
    return (float(info["used_cpu_user"]) + float(info["used_cpu_sys"])) * 1e6


def process_cpu_us(pid: int) -> float:
    """CPU time (user + sys) of a process so far, µs, from /proc (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") * 1e6


@dataclass(frozen=True)
class ProcessRun:
    rate: float  #: jobs/s
    server_cpu_us: float  #: the Redis server's CPU per job (server-wide: use a private one)
    worker_cpu_us: float  #: the worker process's CPU per job (its threads included)


async def process_run(url: str, n: int = 20000, concurrency: int = 64, *,
                      single: bool = False, job_type: str = "fake",
                      **worker: Any) -> ProcessRun:
    """n queued no-op jobs run by one worker (`start_worker(**worker)`), timed from the
    queue's resume to the last success. CPU per job, unlike jobs/s, does not count the time
    a busy machine gives to others. `single`: enqueued one by one (100 at a time), not by
    `enqueue_many` (with tracing on: a stored context per job, not one per batch); `job_type`:
    what the jobs are (a type of `bench.handlers` for a job with a body)."""
    c = await client(url)
    prefix = c.broker.keys.prefix  # type: ignore[attr-defined]
    await c.pause(QUEUE)
    for i in range(0, n, 1000):
        k = min(1000, n - i)
        if not single:
            await c.enqueue_many([JobRequest(job_type, {}, queue=QUEUE)] * k)
            continue
        for j in range(0, k, 100):
            await asyncio.gather(*(c.enqueue(job_type, {}, queue=QUEUE)
                                   for _ in range(min(100, k - j))))
    proc = start_worker(url, prefix, concurrency, **worker)
    try:
        await wait_worker(c)
        cpu = await server_cpu_us(c)
        wcpu = process_cpu_us(proc.pid)
        t = time.perf_counter()
        await c.resume(QUEUE)
        while (await c.stats([QUEUE]))[QUEUE][JobState.SUCCEEDED] < n:
            await asyncio.sleep(0.01)
            if proc.poll() is not None:
                raise RuntimeError("worker exited")
        rate = n / (time.perf_counter() - t)
        return ProcessRun(rate, (await server_cpu_us(c) - cpu) / n,
                          (process_cpu_us(proc.pid) - wcpu) / n)
    finally:
        stop_worker(proc)
        await cleanup(c)


async def process(url: str, n: int = 20000, concurrency: int = 64) -> float:
    return (await process_run(url, n, concurrency)).rate


async def _timed_jobs(url: str, n: int, rate: float, delay: float | None) -> list[float]:
    """Enqueue n `bench.stamp` jobs at `rate`/s; return start - (enqueue time + delay)."""
    c = await client(url)
    prefix = c.broker.keys.prefix  # type: ignore[attr-defined]
    proc = start_worker(url, prefix, 16)
    try:
        await wait_worker(c)
        sent: list[tuple[str, float]] = []
        t0 = time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            now = time.time()
            job = await c.enqueue("bench.stamp", {}, queue=QUEUE, delay=delay)
            sent.append((job.id, now + (delay or 0.0)))
        end = time.monotonic() + 30 + (delay or 0)
        lat: list[float] = []
        for job_id, expected in sent:
            while True:
                job = await c.get(job_id)
                if job.state == JobState.SUCCEEDED:
                    break
                if time.monotonic() > end:
                    raise RuntimeError(f"{job_id} did not finish: {job.state}")
                await asyncio.sleep(0.01)
            assert isinstance(job.result, float)
            lat.append((job.result - expected) * 1000)
        return lat
    finally:
        stop_worker(proc)
        await cleanup(c)


async def latency(url: str) -> dict[str, float]:
    lat = await _timed_jobs(url, 1000, 100.0, None)
    return {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat)}


async def delayed(url: str) -> dict[str, float]:
    lat = await _timed_jobs(url, 300, 100.0, 1.0)
    return {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat)}


BENCHES: dict[str, Callable[[str], Awaitable[float | dict[str, float]]]] = {
    "enqueue_seq": enqueue_seq,
    "enqueue_concurrent": enqueue_concurrent,
    "enqueue_many": enqueue_batched,
    "process": process,
    "latency": latency,
    "delayed_1s": delayed,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHES))
    args = ap.parse_args()
    for name in args.only or list(BENCHES):
        results = [asyncio.run(BENCHES[name](args.redis)) for _ in range(args.runs)]
        if isinstance(results[0], dict):
            keys = results[0].keys()
            parts = []
            for k in keys:
                vals = [r[k] for r in results]  # type: ignore[index]
                parts.append(f"{k} {statistics.median(vals):.2f} [{min(vals):.2f}-{max(vals):.2f}]")
            print(f"{name:20s} " + "  ".join(parts), flush=True)
        else:
            vals = [float(r) for r in results]  # type: ignore[arg-type]
            print(f"{name:20s} {statistics.median(vals):>10,.0f} jobs/s  "
                  f"[{min(vals):,.0f}-{max(vals):,.0f}]", flush=True)


if __name__ == "__main__":
    main()
