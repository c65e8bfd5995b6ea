"""Single enqueue and job memory (issue 19, goals 2 and 4), this tree against an old one.

    python -m bench.enqueue_memory [--old-src DIR] [--redis URL] [--jobs 5000] [--runs 3]

Run it on a private redis-server (`redis-server --port 6391 --save ''`): the Redis-side
figures are `INFO commandstats` deltas, server-wide.

One run measures, each in a fresh subprocess that imports `conveyor` from the tree named by
its PYTHONPATH (this tree's `src`, or --old-src, e.g. `git archive 9480159 src | tar -x -C
/tmp/old` then `--old-src /tmp/old/src`):

- `async`: --jobs sequential `await AsyncConveyor.enqueue` calls from one producer;
- `sync`: --jobs sequential `Conveyor.enqueue` calls (its blocking Redis path);
- `ceiling-async` / `ceiling-sync`: a bare `EVALSHA` of `return 1` per call from redis-py
  (what one round trip costs on this machine, in the same minutes);
- memory: `MEMORY USAGE` of a waiting job's hash, and of the same job once a worker's
  fetch and ack made it a retained SUCCEEDED job (result `null`, and a 200-byte result);
  and its hash's encoding.

Old and new alternate run by run (same minutes, same Redis); each figure is the median of
--runs with min and max. Keys go under a fresh prefix and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench-enq"
MEM_QUEUE = "bench-mem"  # empty but for the job measured


def _rates(jobs: int, start: float, cpu: float) -> list[float]:
    """[jobs per second, the producer process's CPU µs per job] since `start` / `cpu`."""
    return [jobs / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / jobs]


async def _async_rate(url: str, prefix: str, jobs: int) -> list[float]:
    from conveyor.client import AsyncConveyor

    c = AsyncConveyor.from_url(url, key_prefix=prefix)
    await c.connect()
    try:
        await c.enqueue("fake", {}, queue=QUEUE)  # warm: connections, scripts
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(jobs):
            await c.enqueue("fake", {}, queue=QUEUE)
        return _rates(jobs, start, cpu)
    finally:
        await c.close()


def _sync_rate(url: str, prefix: str, jobs: int) -> list[float]:
    from conveyor.client import Conveyor

    with Conveyor.from_url(url, key_prefix=prefix) as c:
        c.connect()
        c.enqueue("fake", {}, queue=QUEUE)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(jobs):
            c.enqueue("fake", {}, queue=QUEUE)
        return _rates(jobs, start, cpu)


async def _memory(url: str, prefix: str) -> dict[str, Any]:
    from conveyor.brokers.base import AckItem
    from conveyor.client import AsyncConveyor

    c = AsyncConveyor.from_url(url, key_prefix=prefix)
    await c.connect()
    out: dict[str, Any] = {}
    try:
        redis = c.broker.client  # type: ignore[attr-defined]
        for label, result in (("null", "null"), ("200B", json.dumps("x" * 198))):
            job = await c.enqueue("fake", {"duration_ms": 1}, queue=MEM_QUEUE)
            key = f"{prefix}:{{{MEM_QUEUE}}}:job:{job.id.split(':', 1)[1]}"
            out["waiting"] = await redis.memory_usage(key, samples=0)
            out["waiting_enc"] = await redis.object("encoding", key)
            batch = await c.broker.fetch(MEM_QUEUE, 1, "bench-worker-0123456789", 30_000)
            (d,) = batch.deliveries
            await c.broker.ack([AckItem(d.job_id, d.token, result)])
            out[f"succeeded_{label}"] = await redis.memory_usage(key, samples=0)
            out[f"succeeded_{label}_enc"] = await redis.object("encoding", key)
            got = await c.get(job.id)
            assert got.state == "succeeded" and len(got.history) == 1, got
    finally:
        await c.close()
    return out


async def _ceiling_async(url: str, jobs: int) -> list[float]:
    """A bare `EVALSHA` of `return 1` from redis-py's asyncio client: the round trip alone."""
    from redis.asyncio import Redis

    r = Redis.from_url(url)
    try:
        sha = await r.script_load("return 1")
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(jobs):
            await r.evalsha(sha, 0)
        return _rates(jobs, start, cpu)
    finally:
        await r.aclose()


def _ceiling_sync(url: str, jobs: int) -> list[float]:
    import redis

    r = redis.Redis.from_url(url)
    sha = r.script_load("return 1")
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(jobs):
        r.evalsha(sha, 0)
    r.close()
    return _rates(jobs, start, cpu)


def child(kind: str, url: str, prefix: str, jobs: int) -> None:
    import conveyor.handlers  # noqa: F401  (registers the built-in `fake` job type)

    value: Any
    if kind == "async":
        value = asyncio.run(_async_rate(url, prefix, jobs))
    elif kind == "sync":
        value = _sync_rate(url, prefix, jobs)
    elif kind == "ceiling-async":
        value = asyncio.run(_ceiling_async(url, jobs))
    elif kind == "ceiling-sync":
        value = _ceiling_sync(url, jobs)
    else:
        value = asyncio.run(_memory(url, prefix))
    print(json.dumps(value))


def run_child(src: str, kind: str, url: str, prefix: str, jobs: int) -> Any:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}"}
    got = subprocess.run(
        [sys.executable, "-m", "bench.enqueue_memory", "--child", kind, "--redis", url,
         "--prefix", prefix, "--jobs", str(jobs)],
        env=env, capture_output=True, text=True, cwd=ROOT)
    if got.returncode:
        raise SystemExit(f"{kind} on {src} failed:\n{got.stderr}")
    return json.loads(got.stdout.strip().splitlines()[-1])


def commandstats(url: str) -> dict[str, tuple[int, int]]:
    """calls and usec of every command so far (server-wide: use a private redis-server)."""
    import redis

    got = redis.Redis.from_url(url).info("commandstats")
    return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in got.items()}


def server_cost(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
                jobs: int) -> tuple[float, float, float]:
    """(commands run per job, scripts' µs per call, every command's µs per job) between two
    `commandstats`: EVALSHA's own usec includes the commands its script runs."""
    def delta(name: str) -> tuple[int, int]:
        c0, u0 = before.get(name, (0, 0))
        c1, u1 = after.get(name, (0, 0))
        return c1 - c0, u1 - u0
    calls = {name: delta(name) for name in after}
    script_calls, script_us = calls.get("evalsha", (0, 0))
    commands = sum(c for name, (c, _) in calls.items() if name not in ("evalsha", "info"))
    top_us = sum(u for name, (_, u) in calls.items() if name in ("evalsha", "sadd"))
    return (commands / jobs, script_us / max(script_calls, 1), top_us / jobs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--old-src", default="")
    ap.add_argument("--child", default="")
    ap.add_argument("--prefix", default="")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.redis, args.prefix, args.jobs)
        return
    trees = {"new": str(ROOT / "src")}
    if args.old_src:
        trees = {"old": args.old_src, **trees}
    prefix = f"cvbench-{uuid.uuid4().hex[:8]}"
    rates: dict[tuple[str, str], list[list[float]]] = {}
    memory: dict[str, dict[str, Any]] = {}
    cost: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    try:
        for _ in range(args.runs):
            for kind in ("async", "sync", "ceiling-async", "ceiling-sync"):
                for name, src in (trees.items() if "ceiling" not in kind
                                  else [("raw", trees["new"])]):
                    before = commandstats(args.redis)
                    rates.setdefault((name, kind), []).append(
                        run_child(src, kind, args.redis, prefix, args.jobs))
                    cost.setdefault((name, kind), []).append(
                        server_cost(before, commandstats(args.redis), args.jobs + 1))
        for name, src in trees.items():
            memory[name] = run_child(src, "memory", args.redis, prefix, 0)
    finally:
        import redis

        r = redis.Redis.from_url(args.redis)
        keys = list(r.scan_iter(match=prefix + ":*", count=5000))
        for i in range(0, len(keys), 5000):
            r.delete(*keys[i: i + 5000])
    print(f"sequential enqueue, {args.jobs} jobs per run, median [min-max] of {args.runs}:")
    for (name, kind), runs in rates.items():
        vals = [r[0] for r in runs]
        print(f"  {name:3} {kind:13} {statistics.median(vals):8,.0f} jobs/s"
              f" [{min(vals):,.0f}-{max(vals):,.0f}],"
              f" producer CPU {statistics.median(r[1] for r in runs):5.0f} µs/job")
    print("Redis per enqueue (INFO commandstats deltas, medians; server-wide: meaningful on a"
          " private redis-server only): commands run, µs per EVALSHA, µs of EVALSHA + SADD:")
    for (name, kind), costs in cost.items():
        print(f"  {name:3} {kind:13} {statistics.median(v[0] for v in costs):5.2f} commands,"
              f" {statistics.median(v[1] for v in costs):6.2f} µs/script,"
              f" {statistics.median(v[2] for v in costs):6.2f} µs/job")
    print("MEMORY USAGE of one job's hash (bytes, encoding):")
    for name, m in memory.items():
        print(f"  {name:3} waiting {m['waiting']} ({m['waiting_enc']}),"
              f" succeeded result null {m['succeeded_null']} ({m['succeeded_null_enc']}),"
              f" succeeded 200-byte result {m['succeeded_200B']} ({m['succeeded_200B_enc']})")


if __name__ == "__main__":
    main()
