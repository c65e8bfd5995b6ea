"""Noisy neighbour (issue 16): one key floods the queue, quiet keys trickle in; how long do
the quiet keys' jobs wait (enqueue to start, on the broker's clock)?

    python -m bench.flow_noisy [--redis URL] [--flood 20000] [--keys 100] [--per-key 10]
                               [--spread 10]

Three runs, one worker process (concurrency 16), jobs of 5 ms: `baseline` (limits on, no
flood), `limited` (limits on: `key_concurrency` 4, the flood key among the others), and
`control` (the flood with no limits: plain FIFO). The goal: `limited` quiet p99 within 2x
`baseline`; `control` shows the starvation.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.core import QUEUE, cleanup, client, pct, start_worker, stop_worker, wait_worker
from conveyor.client import JobRequest
from conveyor.flow import QueueLimits
from conveyor.jobs import JobState

WORK = {"duration_ms": 5}


async def run(url: str, *, flood: int, keys: int, per_key: int, spread_s: float,
              limits: bool) -> dict[str, float]:
    c = await client(url)
    prefix = c.broker.keys.prefix  # type: ignore[attr-defined]
    if limits:
        await c.set_limits(QUEUE, QueueLimits(key_concurrency=4))
    proc = start_worker(url, prefix, 16)
    try:
        await wait_worker(c)
        for i in range(0, flood, 1000):
            await c.enqueue_many([JobRequest("fake", WORK, QUEUE, limit_key="flood")]
                                 * min(1000, flood - i))
        quiet: list[str] = []
        n = keys * per_key
        t0 = time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, t0 + i * spread_s / n - time.perf_counter()))
            job = await c.enqueue("fake", WORK, queue=QUEUE, limit_key=f"quiet{i % keys}")
            quiet.append(job.id)
        waits: list[float] = []
        end = time.monotonic() + 600
        pending = list(quiet)
        while pending:
            if time.monotonic() > end:
                raise RuntimeError(f"{len(pending)} quiet jobs never ran")
            jobs = await c.get_many(pending)
            pending = []
            for job in jobs:
                assert job is not None
                if job.state == JobState.SUCCEEDED and job.started_at is not None:
                    waits.append((job.started_at - job.created_at).total_seconds() * 1000)
                else:
                    pending.append(job.id)
            if pending:
                await asyncio.sleep(0.2)
        return {"p50_ms": round(pct(waits, 50), 1), "p99_ms": round(pct(waits, 99), 1),
                "max_ms": round(max(waits), 1)}
    finally:
        stop_worker(proc)
        await cleanup(c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--flood", type=int, default=20000)
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--per-key", type=int, default=10)
    ap.add_argument("--spread", type=float, default=10.0)
    args = ap.parse_args()
    kw = {"keys": args.keys, "per_key": args.per_key, "spread_s": args.spread}
    results = {
        "baseline": asyncio.run(run(args.redis, flood=0, limits=True, **kw)),
        "limited": asyncio.run(run(args.redis, flood=args.flood, limits=True, **kw)),
        "control": asyncio.run(run(args.redis, flood=args.flood, limits=False, **kw)),
    }
    for name, r in results.items():
        print(f"{name:9s} quiet keys' wait: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms,"
              f" max {r['max_ms']} ms", flush=True)
    ratio = results["limited"]["p99_ms"] / max(results["baseline"]["p99_ms"], 0.001)
    print(f"limited p99 = {ratio:.2f}x baseline")


if __name__ == "__main__":
    main()
