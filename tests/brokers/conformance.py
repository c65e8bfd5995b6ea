"""Helpers shared by the broker conformance tests: backend-neutral checks and bounded polls.

Time always comes from the broker (`now_ms`), never from the host: waiting for a deadline
means polling the broker clock until it has passed, with a bounded wall-clock budget.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, Protocol

from conveyor.brokers.base import Broker
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.ids import split_job_id
from conveyor.jobs import Delivery, Job, JobState

Q = "conf"
TYPE = "conf.task"
#: wall-clock budget of any poll; generous so a slow CI host does not flake
POLL_BUDGET_S = 10.0
LONG_LEASE_MS = 60_000


class BrokerFactory(Protocol):
    """`make_broker(**kw)`: a connected broker sharing the test's isolation prefix."""

    async def __call__(self, **kw: Any) -> Broker: ...


async def assert_audit_ok(broker: Broker, queue: str = Q) -> None:
    """Invariant 1 (one place): every job of `queue` is in exactly one matching index."""
    report = await broker.audit(queue)
    assert report.ok, f"audit of {queue!r} failed: {report}"


async def wait_broker_time(broker: Broker, at_least_ms: int) -> int:
    """Poll the broker clock until it reads `at_least_ms` or later; return that reading."""
    now = await broker.now_ms()
    deadline = time.monotonic() + POLL_BUDGET_S
    while now < at_least_ms:
        if time.monotonic() > deadline:
            raise AssertionError(f"broker clock stuck at {now}, waiting for {at_least_ms}")
        await asyncio.sleep(min(max(at_least_ms - now, 1), 50) / 1000)
        now = await broker.now_ms()
    return now


async def enqueue(
    broker: Broker, payload: Any = None, *, queue: str = Q, type: str = TYPE, **kw: Any
) -> Job:
    """Enqueue one job of an unregistered type (max_attempts etc. given by the test)."""
    return await AsyncConveyor(broker, validate_types=False).enqueue(
        type, payload, queue=queue, **kw
    )


async def fetch_one(
    broker: Broker, *, queue: str = Q, worker: str = "w1", lease_ms: int = LONG_LEASE_MS
) -> Delivery:
    batch = await broker.fetch(queue, 1, worker, lease_ms)
    assert len(batch.deliveries) == 1, f"expected one delivery, got {batch.deliveries}"
    return batch.deliveries[0]


async def fetch_none(broker: Broker, *, queue: str = Q) -> None:
    batch = await broker.fetch(queue, 10, "w-none", LONG_LEASE_MS)
    assert batch.deliveries == [], f"expected nothing to fetch, got {batch.deliveries}"


async def expire_and_reap(
    broker: Broker, fetched_now_ms: int, lease_ms: int, *, queue: str = Q
) -> tuple[int, int]:
    """Wait past a lease deadline (broker clock), reap once, and return (requeued, dead)."""
    await wait_broker_time(broker, fetched_now_ms + lease_ms + 1)
    res = await broker.reap_expired(queue)
    return res.requeued, res.dead


async def deliver_with_short_lease(
    broker: Broker, lease_ms: int = 30, *, queue: str = Q
) -> tuple[Delivery, int]:
    """Fetch one job under a short lease; return it and the broker time of the fetch."""
    batch = await broker.fetch(queue, 1, "w-short", lease_ms)
    assert len(batch.deliveries) == 1
    return batch.deliveries[0], batch.now_ms


async def assert_in_one_state(broker: Broker, job_id: str, state: JobState) -> Job:
    """The record says `state`, and of all state listings exactly that one holds the job."""
    job = await broker.get(job_id)
    assert job.state == state, f"{job_id} is {job.state}, expected {state}"
    queue, _ = split_job_id(job_id)
    holders = []
    for s in JobState:
        page = await broker.list_jobs(queue=queue, state=s, limit=1000)
        if any(j.id == job_id for j in page.items):
            holders.append(s)
    assert holders == [state], f"{job_id} listed under {holders}, expected [{state}]"
    return job


def ms(dt: datetime | None) -> int:
    """Epoch ms of a datetime read back from a Job (rounded: no float truncation)."""
    assert dt is not None
    return round(dt.timestamp() * 1000)


def total(counts: dict[str, int]) -> int:
    return sum(counts.values())


def redis_of(broker: Broker) -> Any:
    """The raw Redis client, for tests that damage the store on purpose (Redis only)."""
    assert isinstance(broker, RedisBroker)
    return broker.client


def redis_job_key(broker: Broker, job_id: str) -> str:
    assert isinstance(broker, RedisBroker)
    queue, ulid = split_job_id(job_id)
    return broker.keys.queue(queue).job(ulid)


def redis_index_key(broker: Broker, queue: str, state: JobState) -> str:
    assert isinstance(broker, RedisBroker)
    return broker.keys.queue(queue).index(state)
