"""The sync client's enqueue, one job per call: over the broker's blocking path
(`Broker.sync_enqueuer`) against the hop through the client's loop thread, on SQLite and Redis.

    python -m bench.sync_enqueue [--redis redis://127.0.0.1:6379/0] [--jobs 2000] [--runs 3]

Both paths run in the same process, interleaved run by run; each figure is the median of
--runs runs (jobs per second, with min and max). Redis keys go under a fresh prefix and are
deleted afterwards; the SQLite files live in a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redis

import conveyor.handlers  # noqa: F401  (registers the built-in `fake` job type)
from conveyor.client import Conveyor

QUEUE = "bench-sync"


def run_once(url: str, jobs: int, *, blocking: bool, prefix: str) -> float:
    """Jobs per second of `jobs` sequential `enqueue` calls on a fresh client."""
    with Conveyor.from_url(url, key_prefix=prefix) as c:
        c.connect()
        if not blocking:
            c._fast = None  # the path every sync client took before the capability
        c.enqueue("fake", {}, queue=QUEUE)  # warm: connections, scripts
        start = time.perf_counter()
        for _ in range(jobs):
            c.enqueue("fake", {}, queue=QUEUE)
        return jobs / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    prefix = f"cvbench-{uuid.uuid4().hex[:8]}"
    figures: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for run in range(args.runs):
                for broker in ("sqlite", "redis"):
                    for path in ("blocking", "loop-hop"):
                        url = (args.redis if broker == "redis"
                               else f"sqlite:///{Path(tmp) / f'{path}-{run}.db'}")
                        rate = run_once(url, args.jobs, blocking=path == "blocking",
                                        prefix=prefix)
                        figures.setdefault((broker, path), []).append(rate)
        finally:
            r = redis.Redis.from_url(args.redis)
            keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                r.delete(*keys)
            r.close()
    for (broker, path), rates in figures.items():
        print(f"{broker:7} {path:9} median {statistics.median(rates):8.0f} jobs/s"
              f"  (min {min(rates):.0f}, max {max(rates):.0f}, {len(rates)} runs)")


if __name__ == "__main__":
    main()
