"""Handlers for the benchmarks: `bench.stamp` returns the host time at which it started, so a
producer on the same host can measure enqueue-to-start latency without extra round trips."""

from __future__ import annotations

import time
from typing import Any

from conveyor.handlers import handler


@handler("bench.stamp", max_attempts=1)
async def stamp(payload: Any) -> float:
    return time.time()


@handler("bench.noop", max_attempts=1)
async def noop(payload: Any) -> None:
    return None
