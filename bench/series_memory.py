"""What the per-minute series cost to keep (issue 18), per queue and job type, for a busy
queue: every minute of the last 7 days holds succeeded, failed and dead counts (of the type
and of every type), as `count_series` writes them. Measured before and after the roll-up the
retention step does (per-minute points for the last day, one point per hour beyond).

    python -m bench.series_memory [--redis URL] [--kinds sfd]

Redis: the sum of `MEMORY USAGE key SAMPLES 0` over the queue's series keys (under a key
prefix of its own, deleted at the end). SQLite: the bytes of the series table's pages
(`dbstat`) in a fresh file. The figures do not depend on the machine's load: one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import tempfile
import uuid

from conveyor.brokers.base import SERIES_KEEP_MINUTES, SERIES_ROLLUP_HOURS
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker

QUEUE = "busy"
TYPE = "bench.task"


def _minutes(now_ms: int) -> range:
    last = now_ms // 60_000
    return range(last - SERIES_KEEP_MINUTES + 1, last + 1)


async def _roll_up(broker: RedisBroker | SqliteBroker) -> None:
    for _ in range(SERIES_KEEP_MINUTES // 60 // SERIES_ROLLUP_HOURS + 2):
        await broker.expire_finished(QUEUE)


async def redis_bytes(url: str, kinds: str) -> tuple[int, int, int, int]:
    """(bytes, keys) before and after the roll-up."""
    broker = RedisBroker.from_url(url, key_prefix=f"bench-series-{uuid.uuid4().hex[:8]}")
    await broker.connect()
    qk = broker.keys.queue(QUEUE)
    client = broker.client
    try:
        pipe = client.pipeline(transaction=False)
        for i, minute in enumerate(_minutes(await broker.now_ms())):
            key = qk.series(minute // 60)
            for kind in kinds:
                n = 1000 + i % 97 if kind == "s" else 1 + i % 7
                pipe.hincrby(key, f"{minute}:{kind}:", n)
                pipe.hincrby(key, f"{minute}:{kind}:{TYPE}", n)
            pipe.pexpireat(key, (minute // 60 + 1) * 3_600_000 + 7 * 86_400_000)
        await pipe.execute()

        async def usage() -> tuple[int, int]:
            keys = [k async for k in client.scan_iter(match=qk.series_prefix + "*")]
            sizes = [await client.memory_usage(k, samples=0) or 0 for k in keys]
            return sum(sizes), len(keys)

        before = await usage()
        await _roll_up(broker)
        after = await usage()
        return before[0], before[1], after[0], after[1]
    finally:
        keys = [k async for k in client.scan_iter(match=broker.keys.prefix + "*")]
        if keys:
            await client.unlink(*keys)
        await broker.close()


async def sqlite_bytes(kinds: str) -> tuple[int, int, int, int]:
    """(bytes, rows) before and after the roll-up."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "series.db")
        broker = SqliteBroker(path)
        await broker.connect()
        try:
            columns = {"s": "succeeded", "f": "failed", "d": "dead"}
            now = await broker.now_ms()
            with contextlib.closing(sqlite3.connect(path)) as conn, conn:
                cols = ", ".join(columns[k] for k in kinds)
                conn.executemany(
                    f"INSERT INTO series (queue, minute, type, {cols}) VALUES"
                    f" (?, ?, ?{', ?' * len(kinds)})",
                    [(QUEUE, m, TYPE, *(1000 + i % 97 if k == "s" else 1 + i % 7
                                        for k in kinds))
                     for i, m in enumerate(_minutes(now))])

            def usage() -> tuple[int, int]:
                with contextlib.closing(sqlite3.connect(path)) as conn:
                    conn.execute("VACUUM")
                    (size,) = conn.execute(
                        "SELECT sum(pgsize) FROM dbstat WHERE name = 'series'").fetchone()
                    (rows,) = conn.execute("SELECT count(*) FROM series").fetchone()
                    return int(size), int(rows)

            before = usage()
            await _roll_up(broker)
            after = usage()
            return before[0], before[1], after[0], after[1]
        finally:
            await broker.close()


async def main(url: str, kinds: str) -> None:
    for name, figures in (("redis", await redis_bytes(url, kinds)),
                          ("sqlite", await sqlite_bytes(kinds))):
        b, bn, a, an = figures
        unit = "keys" if name == "redis" else "rows"
        print(f"{name:7} kinds={kinds:3} before {b / 1024:8.1f} KiB ({bn} {unit})"
              f"  after {a / 1024:8.1f} KiB ({an} {unit})  {b / max(a, 1):.1f}x smaller")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--kinds", default="sfd", help="which counts every minute has")
    args = parser.parse_args()
    asyncio.run(main(args.redis, args.kinds))
