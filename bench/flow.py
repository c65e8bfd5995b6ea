"""Flow control's cost (issue 16): processing throughput of no-op `fake` jobs by one worker
process (concurrency 64) on the local Redis, without limits (the plain fetch path), and with
limits on (`key_concurrency` 1,000: enforced at every fetch, never binding) for jobs of 1 key
and of 1,000 keys (weighted fair queueing between them).

    python -m bench.flow [--redis redis://127.0.0.1:6379/0] [--runs 3] [--jobs 20000]
                         [--broker-only]

Each figure is jobs/s, the median of --runs runs (min, max); the goal: 1,000 keys at least
90% of the no-key rate. With --broker-only, the Redis server's own cost per job (fetch + ack) is
printed too: the CPU time of its main thread (`INFO cpu`: not inflated by a busy host the
way wall time is) and the commands run (`INFO commandstats`, scripts' own calls included).
Run that on a Redis of its own (other clients count otherwise), e.g.
`redis-server --port 6391 --save ''`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import NamedTuple

from bench.core import QUEUE, cleanup, client, start_worker, stop_worker, wait_worker
from conveyor.client import AsyncConveyor, JobRequest
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


class ServerCost(NamedTuple):
    """What the Redis server spent so far: CPU seconds of its main thread (user + system:
    unlike wall time, not inflated by a busy host) and commands run (those scripts call
    included, the scripts and INFO themselves not)."""

    cpu_s: float
    commands: int

    @classmethod
    async def read(cls, c: AsyncConveyor) -> ServerCost:
        redis = c.broker.client  # type: ignore[attr-defined]
        cpu, stats = await redis.info("cpu"), await redis.info("commandstats")
        return cls(float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"]),
                   sum(int(v["calls"]) for k, v in stats.items()
                       if k not in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_info")))


async def broker_only(url: str, n: int, keys: int | None, batch: int = 64
                      ) -> tuple[float, float, float]:
    """The broker's side alone, in-process: fetch `batch` jobs, ack them, until done.
    Returns jobs/s, the server's CPU time per job (µs) and its commands per job."""
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
        cost = await ServerCost.read(c)
        t = time.perf_counter()
        while done < n:
            got = (await b.fetch(QUEUE, batch, "bench", 60_000)).deliveries
            if not got:
                raise RuntimeError(f"nothing fetched after {done} jobs")
            await b.ack([AckItem(d.job_id, d.token) for d in got])
            done += len(got)
        rate = n / (time.perf_counter() - t)
        after = await ServerCost.read(c)
        return rate, (after.cpu_s - cost.cpu_s) * 1e6 / n, (after.commands - cost.commands) / n
    finally:
        await cleanup(c)


async def sqlite_backlog(backlog: int, keys: int | None, n: int = 3000, batch: int = 64
                         ) -> float:
    """SQLite, in-process: with `backlog` jobs queued (one key floods them, the others have
    one job each: a limited fetch's cost grows with what it reads per call), fetch `batch`
    jobs and ack them until `n` are done. Returns jobs/s."""
    import tempfile
    from pathlib import Path

    from conveyor.brokers.base import AckItem

    with tempfile.TemporaryDirectory() as tmp:
        c = AsyncConveyor.from_url(f"sqlite:///{Path(tmp) / 'flow.db'}")
        await c.connect()
        b = c.broker
        try:
            if keys is not None:
                await c.set_limits(QUEUE, QueueLimits(key_concurrency=1000))
            for i in range(0, backlog, 1000):
                await c.enqueue_many([
                    JobRequest("fake", {}, queue=QUEUE, limit_key=None if keys is None else
                               (f"k{i + j}" if i + j < keys - 1 else "flood"))
                    for j in range(min(1000, backlog - i))
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
            await c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--broker-only", action="store_true",
                    help="fetch + ack in-process (the broker's cost alone, less noise)")
    ap.add_argument("--sqlite", type=int, metavar="BACKLOG",
                    help="SQLite instead: fetch + ack in-process with BACKLOG jobs queued")
    args = ap.parse_args()
    if args.sqlite:
        sq: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(args.runs):
            for name, keys in CASES.items():
                sq[name].append(asyncio.run(sqlite_backlog(args.sqlite, keys)))
        for name, r in sq.items():
            print(f"SQLite, {args.sqlite} queued, {name:20s} {statistics.median(r):7.0f} jobs/s"
                  f" (min {min(r):.0f}, max {max(r):.0f})", flush=True)
        return
    runs: dict[str, list[float]] = {name: [] for name in CASES}
    cpu: dict[str, list[float]] = {name: [] for name in CASES}
    calls: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):  # cases interleaved: a busy moment of the host hits all
        for name, keys in CASES.items():
            if args.broker_only:
                rate, usec, ncalls = asyncio.run(broker_only(args.redis, args.jobs, keys))
                cpu[name].append(usec)
                calls[name].append(ncalls)
            else:
                rate = asyncio.run(process(args.redis, args.jobs, keys))
            runs[name].append(rate)
    medians: dict[str, float] = {}
    for name, rates in runs.items():
        medians[name] = statistics.median(rates)
        print(f"{name:20s} {medians[name]:9.0f} jobs/s  (min {min(rates):.0f}, "
              f"max {max(rates):.0f})", flush=True)
    base = medians["no limits, no keys"]
    for name in list(CASES)[1:]:
        print(f"{name:20s} {100 * medians[name] / base:5.1f}% of the no-key rate")
    if args.broker_only:
        base_us = statistics.median(cpu["no limits, no keys"])
        for name, usecs in cpu.items():
            med = statistics.median(usecs)
            print(f"{name:20s} Redis CPU {med:6.1f} µs/job (min {min(usecs):.1f}, max"
                  f" {max(usecs):.1f}; {100 * base_us / med:5.1f}% of the no-key rate),"
                  f" {statistics.median(calls[name]):.1f} commands/job")


if __name__ == "__main__":
    main()
