"""Bounded polls: each fails with what it waited for (and, for a job, the job as last seen)
once its deadline passes. Never a fixed sleep in place of a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from conveyor.client import AsyncConveyor
from conveyor.jobs import Job, JobState

T = TypeVar("T")

POLL_S = 0.01
#: sync polls (a browser test, an HTTP server in another process) poll less often
SYNC_POLL_S = 0.05


async def wait_until(
    probe: Callable[[], Awaitable[T | None]], what: str = "a condition",
    timeout_s: float = 10.0, poll_s: float = POLL_S,
) -> T:
    """Await `probe` until it returns something truthy, and return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(poll_s)


async def wait_true(
    predicate: Callable[[], T | None], what: str = "a condition", timeout_s: float = 10.0,
    poll_s: float = POLL_S,
) -> T:
    """`wait_until` for a plain (not awaitable) predicate, polled from async code."""

    async def probe() -> T | None:
        return predicate()

    return await wait_until(probe, what, timeout_s, poll_s)


def wait_until_sync(
    probe: Callable[[], T | None], what: str = "a condition", timeout_s: float = 15.0,
    poll_s: float = SYNC_POLL_S,
) -> T:
    """`wait_until` for sync tests (it blocks the thread between polls)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(poll_s)


async def wait_for_state(
    client: AsyncConveyor, job_id: str, states: Collection[JobState], timeout_s: float = 15.0
) -> Job:
    """Poll until the job reaches one of `states`; fail with the job as last seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        job = await client.get(job_id)
        if job.state in states:
            return job
        if loop.time() > deadline:
            raise AssertionError(
                f"job {job_id} still {job.state} after {timeout_s}s (wanted "
                f"{sorted(str(s) for s in states)}): {job.model_dump_json(indent=1)}"
            )
        await asyncio.sleep(POLL_S)
