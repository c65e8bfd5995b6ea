"""Flow control's cost (issue 16): processing throughput of no-op `fake` jobs by one worker
process (concurrency 64) on the local Redis, without limits (the plain fetch path), and with
limits on (`key_concurrency` 1,000: enforced at every fetch, never binding) for jobs of 1 key
and of 1,000 keys (weighted fair queueing between them).

    python -m bench.flow [--redis redis://127.0.0.1:6379/0] [--runs 3] [--jobs 20000]
                         [--broker-only]

Each figure is jobs/s, the median of --runs runs (min, max); the goal: 1,000 keys at least
90% of the no-key rate.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench.core import QUEUE, cleanup, client, start_worker, stop_worker, wait_worker
from conveyor.client import JobRequest
from conveyor.flow import QueueLimits
from conveyor.jobs import JobState

CASES: dict[str, int | None] = {"no limits, no keys": None, "limits, 1 key": 1,
                                "limits, 1,000 keys": 1000}


async def process(url: str, n: int, keys: int | None, concurrency: int = 64) -> float:
    c = await client(url)
    prefix = c.broker.keys.prefix  # type: ignore[attr-defined]
    await c.pause(QUEUE)
    if keys is not None:
        await c.set_limits(QUEUE, QueueLimits(key_concurrency=1000))
    for i in range(0, n, 1000):
        await c.enqueue_many([
            JobRequest("fake", {}, queue=QUEUE,
                       limit_key=None if keys is None else f"k{(i + j) % keys}")
            for j in range(min(1000, n - i))
        ])
    proc = start_worker(url, prefix, concurrency)
    try:
        await wait_worker(c)
        t = time.perf_counter()
        await c.resume(QUEUE)
        while (await c.stats([QUEUE]))[QUEUE][JobState.SUCCEEDED] < n:
            await asyncio.sleep(0.01)
            if proc.poll() is not None:
                raise RuntimeError("worker exited")
        rate = n / (time.perf_counter() - t)
        report = await c.broker.audit(QUEUE)
        if not report.ok:
            raise RuntimeError(f"audit failed: {report}")
        return rate
    finally:
        stop_worker(proc)
        await cleanup(c)


async def broker_only(url: str, n: int, keys: int | None, batch: int = 64) -> float:
    """The broker's side alone, in-process: fetch `batch` jobs, ack them, until done."""
    from conveyor.brokers.base import AckItem

    c = await client(url)
    b = c.broker
    try:
        if keys is not None:
            await c.set_limits(QUEUE, QueueLimits(key_concurrency=1000))
        for i in range(0, n, 1000):
            await c.enqueue_many([
                JobRequest("fake", {}, queue=QUEUE,
                           limit_key=None if keys is None else f"k{(i + j) % keys}")
                for j in range(min(1000, n - i))
            ])
        done = 0
        t = time.perf_counter()
        while done < n:
            got = (await b.fetch(QUEUE, batch, "bench", 60_000)).deliveries
            if not got:
                raise RuntimeError(f"nothing fetched after {done} jobs")
            await b.ack([AckItem(d.job_id, d.token) for d in got])
            done += len(got)
        return n / (time.perf_counter() - t)
    finally:
        await cleanup(c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--broker-only", action="store_true",
                    help="fetch + ack in-process (the broker's cost alone, less noise)")
    args = ap.parse_args()
    bench = broker_only if args.broker_only else process
    runs: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):  # cases interleaved: a busy moment of the host hits all
        for name, keys in CASES.items():
            runs[name].append(asyncio.run(bench(args.redis, args.jobs, keys)))
    medians: dict[str, float] = {}
    for name, rates in runs.items():
        medians[name] = statistics.median(rates)
        print(f"{name:20s} {medians[name]:9.0f} jobs/s  (min {min(rates):.0f}, "
              f"max {max(rates):.0f})", flush=True)
    base = medians["no limits, no keys"]
    for name in list(CASES)[1:]:
        print(f"{name:20s} {100 * medians[name] / base:5.1f}% of the no-key rate")


if __name__ == "__main__":
    main()
