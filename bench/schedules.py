"""Schedules benchmark (issue 15), on the local Redis, one `conveyor worker` process:

    python -m bench.schedules [--redis redis://127.0.0.1:6379/0] [--seconds 20]
                              [--registered 10000] [--only lateness cost]

- lateness: 100 schedules every 1 s, all ticking at the same instant (a burst of 100 jobs
  a second); each tick's `bench.stamp` job returns the host time it started at; lateness =
  start - tick (p50 / p99 / max, ms), over `--seconds`.
- staggered: the same, tick i at i * 10 ms past each second (100 jobs a second, evenly: the
  rate of bench.core's delayed_1s, the issue's reference).
- cost: `--registered` schedules (every 60 s, so about registered / 60 ticks a second) plus
  nothing else; Redis CPU (INFO cpu, server-wide: run it on a quiet server) and the worker
  process's CPU (from /proc) over `--seconds`, divided by the ticks fired meanwhile.

Every run uses its own key prefix and deletes its keys afterwards. Figures are reported by
hand in docs/benchmarks.md (no timed assertions in tests).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from bench.core import QUEUE, cleanup, client, pct, start_worker, stop_worker, wait_worker
from conveyor.jobs import JobState
from conveyor.schedules import Schedule
from conveyor.timeutil import datetime_to_ms

TICK_S = os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S  # utime + stime


async def _redis_cpu_s(c: Any) -> float:
    info = await c.broker.client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _schedule(name: str, every_s: float, offset_ms: int | None = None) -> Schedule:
    data: dict[str, Any] = {"name": name, "every_s": every_s, "catch_up": "latest",
                            "job": {"type": "bench.stamp", "queue": QUEUE}}
    if offset_ms is not None:  # anchored at a past instant: ticks at that ms of each second
        data["start_at"] = f"2026-01-01T00:00:00.{offset_ms:03d}Z"
    return Schedule.parse(data)


async def lateness(url: str, seconds: float, count: int = 100,
                   stagger: bool = False) -> dict[str, float]:
    """Aligned: every schedule ticks at the same instant (a burst of `count` jobs a
    second). Staggered: tick i at i * 10 ms past the second (the rate of bench.core's
    delayed_1s, 100 jobs a second, evenly)."""
    c = await client(url)
    prefix = c.broker.keys.prefix  # type: ignore[attr-defined]
    proc = start_worker(url, prefix, 64)
    try:
        await wait_worker(c)
        await c.schedules.sync([_schedule(f"s{i:03d}", 1, i * 1000 // count if stagger else None)
                                for i in range(count)])
        start = await c.broker.now_ms()
        await asyncio.sleep(seconds)
        end = await c.broker.now_ms()
        await asyncio.sleep(2)  # the last ticks' jobs finish
        late: list[float] = []
        for i in range(count):
            page = await c.schedules.runs(f"s{i:03d}", limit=1000)
            for job in page.items:
                tick = job.schedule.tick if job.schedule else None
                if tick is None or not start + 2000 <= datetime_to_ms(tick) <= end:
                    continue  # the first ticks may be late catch-up of the sync itself
                if job.state != JobState.SUCCEEDED or not isinstance(job.result, float):
                    raise RuntimeError(f"{job.id} is {job.state}")
                late.append(job.result * 1000 - datetime_to_ms(tick))
        return {"ticks": len(late), "p50_ms": pct(late, 50), "p99_ms": pct(late, 99),
                "max_ms": max(late)}
    finally:
        stop_worker(proc)
        await cleanup(c)


async def cost(url: str, seconds: float, registered: int) -> dict[str, float]:
    c = await client(url)
    prefix = c.broker.keys.prefix  # type: ignore[attr-defined]
    proc = start_worker(url, prefix, 64)
    try:
        await wait_worker(c)
        t = time.perf_counter()
        for i in range(0, registered, 50):
            await asyncio.gather(*(c.schedules.put(_schedule(f"r{j:05d}", 60))
                                   for j in range(i, min(i + 50, registered))))
        saved_s = time.perf_counter() - t
        await asyncio.sleep(65)  # one whole period: every schedule has fired once
        fired0 = await _fired(c)
        r0, w0 = await _redis_cpu_s(c), _proc_cpu_s(proc.pid)
        await asyncio.sleep(seconds)
        r1, w1 = await _redis_cpu_s(c), _proc_cpu_s(proc.pid)
        ticks = await _fired(c) - fired0
        return {"registered": registered, "save_s": saved_s, "ticks": ticks,
                "ticks_per_s": ticks / seconds,
                "redis_cpu_us_per_tick": (r1 - r0) / max(ticks, 1) * 1e6,
                "worker_cpu_us_per_tick": (w1 - w0) / max(ticks, 1) * 1e6,
                "redis_cpu_pct": (r1 - r0) / seconds * 100,
                "worker_cpu_pct": (w1 - w0) / seconds * 100}
    finally:
        stop_worker(proc)
        await cleanup(c)


async def _fired(c: Any) -> int:
    total, cursor = 0, None
    while True:
        page = await c.schedules.list(100, cursor)
        total += sum(s.counts.fired for s in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--registered", type=int, default=10_000)
    ap.add_argument("--only", nargs="*", choices=["lateness", "staggered", "cost"])
    args = ap.parse_args()
    for name in args.only or ["lateness", "staggered", "cost"]:
        if name in ("lateness", "staggered"):
            out = asyncio.run(lateness(args.redis, args.seconds, stagger=name == "staggered"))
        else:
            out = asyncio.run(cost(args.redis, args.seconds, args.registered))
        print(f"{name:10s} " + "  ".join(f"{k} {v:,.2f}" for k, v in out.items()), flush=True)


if __name__ == "__main__":
    main()
