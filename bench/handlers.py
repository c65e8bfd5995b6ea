"""Handlers for the benchmarks: `bench.stamp` returns the host time at which it started, so a
producer on the same host can measure enqueue-to-start latency without extra round trips."""

from __future__ import annotations

import time
from typing import Any

from bench.peers._driver import abody
from conveyor.handlers import handler


@handler("bench.stamp", max_attempts=1)
async def stamp(payload: Any) -> float:
    return time.time()


@handler("bench.noop", max_attempts=1)
async def noop(payload: Any) -> None:
    return None


@handler("bench.rtt", max_attempts=1)
async def rtt(payload: Any) -> None:
    """A job with a body: one pipelined SET + GET over its own connection to the Redis named
    by `BENCH_REDIS_URL` (the "rtt" body of `bench.compare` (b'))."""
    await abody({"b": "rtt"})


@handler("bench.sleep", max_attempts=1)
async def sleep(payload: Any) -> None:
    """A job with an I/O-bound body: 10 ms of waiting (the "sleep" body of (b'))."""
    await abody({"b": "sleep"})
