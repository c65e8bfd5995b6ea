"""Invariant 6 (idempotent enqueue): one idempotency key, one job, however many callers race."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.brokers.base import Broker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.errors import IdempotencyConflict
from conveyor.jobs import JobState
from tests.brokers.conformance import Q, assert_audit_ok, fetch_one, total

FAKE_Q = "default"


async def test_concurrent_enqueues_with_one_key_create_one_job(
    broker: Broker, client: AsyncConveyor
) -> None:
    jobs = await asyncio.gather(
        *(client.enqueue("fake", {"duration_ms": 5}, idempotency_key="order-42") for _ in range(50))
    )
    ids = {j.id for j in jobs}
    assert len(ids) == 1
    stats = (await broker.stats([FAKE_Q]))[FAKE_Q]
    assert total(stats) == 1
    assert stats[JobState.QUEUED] == 1
    (job,) = (await broker.list_jobs(queue=FAKE_Q, state=JobState.QUEUED)).items
    assert job.id in ids
    assert job.idempotency_key == "order-42"
    await assert_audit_ok(broker, FAKE_Q)


async def test_same_key_different_request_is_a_conflict(
    broker: Broker, client: AsyncConveyor
) -> None:
    first = await client.enqueue("fake", {"duration_ms": 1}, idempotency_key="k")
    with pytest.raises(IdempotencyConflict) as err:
        await client.enqueue("fake", {"duration_ms": 2}, idempotency_key="k")
    assert err.value.details == {"job_id": first.id}
    with pytest.raises(IdempotencyConflict):
        await client.enqueue("fake", {"duration_ms": 1}, idempotency_key="k", priority=5)
    assert total((await broker.stats([FAKE_Q]))[FAKE_Q]) == 1
    await assert_audit_ok(broker, FAKE_Q)


async def test_key_returns_the_existing_job_as_it_is_now(
    broker: Broker, raw_client: AsyncConveyor
) -> None:
    job, created = await raw_client.enqueue_job(JobRequest("t", 1, Q, idempotency_key="k"))
    assert created
    d = await fetch_one(broker)
    again, created = await raw_client.enqueue_job(JobRequest("t", 1, Q, idempotency_key="k"))
    assert not created
    assert again.id == job.id == d.job_id
    assert again.state == JobState.RUNNING
    assert again.attempts == 1
    await assert_audit_ok(broker)


async def test_duplicate_keys_within_one_batch_create_one_job(
    broker: Broker, raw_client: AsyncConveyor
) -> None:
    results = await raw_client.enqueue_many(
        [JobRequest("t", {"n": 1}, Q, idempotency_key="same") for _ in range(5)]
        + [JobRequest("t", {"n": 2}, Q, idempotency_key="other")]
    )
    assert [r.created for r in results] == [True, False, False, False, False, True]
    assert len({r.job_id for r in results[:5]}) == 1
    assert total((await broker.stats([Q]))[Q]) == 2
    await assert_audit_ok(broker)


async def test_jobs_without_a_key_are_never_merged(
    broker: Broker, raw_client: AsyncConveyor
) -> None:
    jobs = await asyncio.gather(*(raw_client.enqueue("t", 1, queue=Q) for _ in range(10)))
    assert len({j.id for j in jobs}) == 10
    assert (await broker.stats([Q]))[Q][JobState.QUEUED] == 10
    await assert_audit_ok(broker)


async def test_keys_are_scoped_to_their_queue(broker: Broker, raw_client: AsyncConveyor) -> None:
    """An idempotency key names a job of its own queue (every key of a queue lives in that
    queue's hash slot, which Redis Cluster needs): the same key in another queue is another
    job, never a conflict, and each queue's replays return its own job."""
    a, a_created = await raw_client.enqueue_job(JobRequest("t", 1, "qa", idempotency_key="k"))
    b, b_created = await raw_client.enqueue_job(JobRequest("t", 2, "qb", idempotency_key="k"))
    assert (a_created, b_created) == (True, True) and a.id != b.id
    again_a, created = await raw_client.enqueue_job(JobRequest("t", 1, "qa", idempotency_key="k"))
    assert (again_a.id, created) == (a.id, False)
    again_b, created = await raw_client.enqueue_job(JobRequest("t", 2, "qb", idempotency_key="k"))
    assert (again_b.id, created) == (b.id, False)
    with pytest.raises(IdempotencyConflict):  # within a queue the key still guards its body
        await raw_client.enqueue_job(JobRequest("t", 2, "qa", idempotency_key="k"))
    stats = await broker.stats(["qa", "qb"])
    assert total(stats["qa"]) == total(stats["qb"]) == 1
    await assert_audit_ok(broker, "qa")
    await assert_audit_ok(broker, "qb")
