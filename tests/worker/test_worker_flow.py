"""A Worker against the real Redis broker with flow control: RateLimited holds the key and
charges no attempt; a worker waits for a held job's moment by the broker's answer (its
maintenance period here is far longer than the test), not by polling."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.errors import RateLimited
from conveyor.flow import QueueLimits, Rate
from conveyor.handlers import JobContext, Registry, queue_limits
from conveyor.jobs import JobState
from tests.support.inproc import make_settings
from tests.support.waits import wait_for_state
from tests.worker.worker_helpers import QUEUE, RunWorker

DONE = {JobState.SUCCEEDED, JobState.DEAD}


async def test_rate_limited_releases_without_an_attempt_and_holds_the_key(
    registry: Registry, client: AsyncConveyor, broker: RedisBroker, run_worker: RunWorker
) -> None:
    calls: list[tuple[str, int]] = []

    @registry.handler("upstream", max_attempts=1)
    async def upstream(payload: dict[str, Any], ctx: JobContext) -> str:
        calls.append((payload["n"], ctx.attempt))
        if payload["n"] == "a1" and len([c for c in calls if c[0] == "a1"]) == 1:
            raise RateLimited(0.3)
        return "ok"

    a1 = await client.enqueue("upstream", {"n": "a1"}, queue=QUEUE, limit_key="a")
    a2 = await client.enqueue("upstream", {"n": "a2"}, queue=QUEUE, limit_key="a")
    b1 = await client.enqueue("upstream", {"n": "b1"}, queue=QUEUE, limit_key="b")
    async with run_worker(concurrency=1, settings=make_settings(reap_interval_s=30.0)):
        done = [await wait_for_state(client, j.id, DONE) for j in (a1, a2, b1)]
    assert [j.state for j in done] == [JobState.SUCCEEDED] * 3
    first = done[0]
    assert first.attempts == 1  # max_attempts 1: the hold did not use the only attempt
    released = [h for h in first.history if h.error_code == "rate_limited"]
    assert len(released) == 1 and released[0].finished_at is not None
    # nothing of key a started during the hold; b did
    for job in done[:2]:
        assert job.started_at is not None
        assert job.started_at >= released[0].finished_at
    assert (await broker.audit(QUEUE)).ok


async def test_worker_sleeps_until_a_rate_token_arrives(
    registry: Registry, client: AsyncConveyor, broker: RedisBroker, run_worker: RunWorker
) -> None:
    @registry.handler("tick")
    async def tick(payload: dict[str, Any]) -> int:
        return 1

    await broker.set_limits(QUEUE, QueueLimits(key_rate=Rate(count=1, per_s=0.2, burst=1)))
    jobs = [await client.enqueue("tick", {}, queue=QUEUE, limit_key="k") for _ in range(4)]
    # the maintenance period (30 s) is far past the test: only the fetch's answer wakes it
    async with run_worker(settings=make_settings(reap_interval_s=30.0)):
        done = [await wait_for_state(client, j.id, DONE, timeout_s=10) for j in jobs]
    starts = sorted(j.started_at for j in done if j.started_at is not None)
    assert len(starts) == 4
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert all(g >= 0.19 for g in gaps), gaps  # one token per 200 ms, burst 1
    assert (await broker.audit(QUEUE)).ok


async def test_limits_declared_in_code_are_synced_at_start(
    registry: Registry, broker: RedisBroker, run_worker: RunWorker
) -> None:
    declared = registry.queue_limits(QUEUE, concurrency=2, key_rate={"count": 5})
    queue_limits("not-served", concurrency=1, registry=registry)
    assert await broker.get_limits(QUEUE) is None
    async with run_worker():
        for _ in range(500):  # the worker syncs as it starts
            if await broker.get_limits(QUEUE) is not None:
                break
            await asyncio.sleep(0.01)
        assert await broker.get_limits(QUEUE) == declared == QueueLimits(
            concurrency=2, key_rate=Rate(count=5))
    assert await broker.get_limits("not-served") is None
