"""Redis Cluster against one Redis (issue 14): the same load on both, started here.

    python -m bench.cluster [--jobs 30000] [--queues 30] [--workers 3] [--runs 1]

Starts a local cluster (scripts/redis-cluster: 3 primaries + 3 replicas, AOF everysec) and one
redis-server configured alike (AOF, noeviction), then on each: (a) `enqueue_many` of --jobs
no-op jobs spread round-robin over --queues queues, in batches of 1,000; (b) processing them
with --workers `conveyor worker` processes, each on every queue (concurrency 64); (c) the
Redis CPU time (user + sys, from INFO cpu) each primary spent on (a) + (b): how the load
spreads over primaries; (d) on the cluster, the cost of CONVEYOR_REDIS_WAIT_REPLICAS=1:
single enqueues one by one, and processing, with and without it. Prints one line per figure.

All processes share one machine: the figures compare the two set-ups under the same client
CPU, they are not what 3 machines would do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import JobState

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "redis-cluster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_single(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", ""],
        stdout=subprocess.DEVNULL)
    return proc, port


async def wait_ping(port: int) -> None:
    r = Redis(port=port)
    try:
        for _ in range(200):
            try:
                if await r.ping():
                    return
            except Exception:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"redis on {port} did not answer")
    finally:
        await r.aclose()


async def cpu_of(ports: list[int]) -> dict[int, float]:
    out = {}
    for port in ports:
        r = Redis(port=port, decode_responses=True)
        try:
            info = await r.info("cpu")
            out[port] = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        finally:
            await r.aclose()
    return out


async def primaries(ports: list[int]) -> list[int]:
    out = []
    for port in ports:
        r = Redis(port=port, decode_responses=True)
        try:
            if (await r.info("replication"))["role"] == "master":
                out.append(port)
        finally:
            await r.aclose()
    return out


def start_worker(url: str, prefix: str, queues: list[str], wait: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CONVEYOR_BROKER_URL=url, CONVEYOR_KEY_PREFIX=prefix,
               CONVEYOR_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
               CONVEYOR_REDIS_WAIT_REPLICAS=str(wait))
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "--queues", ",".join(queues),
         "--concurrency", "64", "--app", "bench.handlers"], env=env, cwd=ROOT)


async def run_load(url: str, jobs: int, queues: list[str], workers: int,
                   wait: int = 0) -> tuple[float, float]:
    """(enqueue jobs/s, processing jobs/s) of one run under a fresh key prefix."""
    import bench.handlers  # noqa: F401

    prefix = "cvbench-" + uuid.uuid4().hex[:8]
    c = AsyncConveyor.from_url(url, key_prefix=prefix)
    c.broker.wait_replicas = wait  # type: ignore[attr-defined]
    await c.connect()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for q in queues:
            await c.pause(q)
        reqs = [JobRequest("fake", {}, queue=queues[i % len(queues)]) for i in range(1000)]
        t = time.perf_counter()
        for _ in range(jobs // 1000):
            await c.enqueue_many(reqs)
        enqueue_rate = jobs / (time.perf_counter() - t)
        procs = [start_worker(url, prefix, queues, wait) for _ in range(workers)]
        while len(await c.workers()) < workers:  # noqa: ASYNC110  (polling Redis)
            await asyncio.sleep(0.05)
        t = time.perf_counter()
        for q in queues:
            await c.resume(q)
        while True:
            stats = await c.stats(queues)
            if sum(s[JobState.SUCCEEDED] for s in stats.values()) >= jobs:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited")
            await asyncio.sleep(0.05)
        return enqueue_rate, jobs / (time.perf_counter() - t)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        await c.close()


async def single_enqueues(url: str, n: int, wait: int) -> float:
    prefix = "cvbench-" + uuid.uuid4().hex[:8]
    c = AsyncConveyor.from_url(url, key_prefix=prefix)
    c.broker.wait_replicas = wait  # type: ignore[attr-defined]
    await c.connect()
    try:
        t = time.perf_counter()
        for _ in range(n):
            await c.enqueue("fake", {}, queue="bench-wait")
        return n / (time.perf_counter() - t)
    finally:
        await c.close()


async def main_async(args: argparse.Namespace) -> None:
    queues = [f"bench-{i}" for i in range(args.queues)]
    tmp = Path(tempfile.mkdtemp(prefix="cv-bench-"))
    single, single_port = start_single(tmp)
    out = subprocess.run([str(SCRIPT), "up"],  # noqa: ASYNC221  (once, before any load)
                         capture_output=True, text=True, check=True).stdout
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    try:
        await wait_ping(single_port)
        seeds = fields["seeds"]
        cluster_url = f"redis+cluster://{seeds}/"
        ports = [int(s.rsplit(":", 1)[1]) for s in seeds.split(",")]
        prim = await primaries(ports)
        for label, url, watch in (("one Redis", f"redis://127.0.0.1:{single_port}/0",
                                   [single_port]),
                                  ("cluster 3+3", cluster_url, prim)):
            for _ in range(args.runs):
                before = await cpu_of(watch)
                enq, proc = await run_load(url, args.jobs, queues, args.workers)
                after = await cpu_of(watch)
                cpu = ", ".join(f"{after[p] - before[p]:.1f}" for p in watch)
                print(f"{label:12s} {args.queues} queues: enqueue_many {enq:>9,.0f} jobs/s;"
                      f" processing ({args.workers} workers) {proc:>8,.0f} jobs/s;"
                      f" Redis CPU s per primary: {cpu}", flush=True)
        for wait in (0, 1):
            rate = await single_enqueues(cluster_url, 3000, wait)
            _, proc = await run_load(cluster_url, args.jobs // 3, queues, args.workers, wait)
            print(f"cluster WAIT_REPLICAS={wait}: single enqueue {rate:>7,.0f} jobs/s;"
                  f" processing {proc:>8,.0f} jobs/s", flush=True)
    finally:
        subprocess.run([str(SCRIPT), "down", fields["dir"]], check=False)  # noqa: ASYNC221
        single.terminate()
        single.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=30_000)
    ap.add_argument("--queues", type=int, default=30)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--runs", type=int, default=1)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
