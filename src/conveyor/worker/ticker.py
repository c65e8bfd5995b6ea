"""Run a coroutine on a fixed period, scheduled by deadlines (start + k * period).

Sleeping *after* the work would let the period drift by the work's duration; deadlines keep
the rhythm, and ticks missed while the work overran are skipped rather than bunched up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def run_every(
    period_s: float, tick: Callable[[], Awaitable[None]], *, first_now: bool = True
) -> None:
    """Call `tick` every `period_s` until cancelled. `tick` must handle its own errors."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    start = loop.time()
    k = 0
    if not first_now:
        k = 1
        await asyncio.sleep(period_s)
    while True:
        await tick()
        if task is not None and task.cancelling():
            # On Python 3.11 a library's wait_for can finish normally and swallow the
            # CancelledError meant for us (gh-86296); honour the request anyway.
            raise asyncio.CancelledError
        k += 1
        now = loop.time()
        next_at = start + k * period_s
        if next_at <= now:
            k = int((now - start) / period_s) + 1
            next_at = start + k * period_s
        await asyncio.sleep(next_at - now)
