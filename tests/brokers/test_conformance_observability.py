"""Observability reads on every backend (issue 18): how long the oldest ready job has waited
(the autoscaling signal), and the due time a delivery carries (the worker's queue wait)."""

from __future__ import annotations

from conformance import Q, enqueue, fetch_one, ms, wait_broker_time

from conveyor.brokers.base import Broker


async def _age_bounds(broker: Broker, due_ms: int, queue: str = Q) -> tuple[int, int, int]:
    """(lowest possible, reported, highest possible) age of a job due at `due_ms`."""
    before = await broker.now_ms()
    age = (await broker.ready_ages([queue]))[queue]
    after = await broker.now_ms()
    return before - due_ms, age, after - due_ms


async def test_no_waiting_job_reads_zero(broker: Broker) -> None:
    assert await broker.ready_ages([Q, "other"]) == {Q: 0, "other": 0}
    await enqueue(broker)
    await fetch_one(broker)  # running: it waits for no worker
    assert (await broker.ready_ages([Q]))[Q] == 0
    assert await broker.ready_ages([]) == {}


async def test_age_of_a_queued_job_counts_from_its_due_time(broker: Broker) -> None:
    job = await enqueue(broker)
    await wait_broker_time(broker, ms(job.run_at) + 40)
    low, age, high = await _age_bounds(broker, ms(job.run_at))
    assert 40 <= low <= age <= high
    await broker.pause(Q)  # a paused queue's jobs still wait
    low, age, high = await _age_bounds(broker, ms(job.run_at))
    assert low <= age <= high


async def test_the_starved_low_priority_job_is_the_oldest(broker: Broker) -> None:
    old = await enqueue(broker, priority=-5)
    await wait_broker_time(broker, ms(old.run_at) + 30)
    await enqueue(broker, priority=5)  # delivered first, but younger
    await enqueue(broker, priority=-5)
    low, age, high = await _age_bounds(broker, ms(old.run_at))
    assert 30 <= low <= age <= high


async def test_a_due_scheduled_job_waits_before_it_is_promoted(broker: Broker) -> None:
    job = await enqueue(broker, delay=0.05)
    assert (await broker.ready_ages([Q]))[Q] == 0  # not due yet
    await wait_broker_time(broker, ms(job.run_at) + 20)
    low, age, high = await _age_bounds(broker, ms(job.run_at))
    assert 20 <= low <= age <= high


async def test_a_delivery_carries_its_due_time_and_lease_start(broker: Broker) -> None:
    job = await enqueue(broker, delay=0.02)
    await wait_broker_time(broker, ms(job.run_at) + 1)
    batch = await broker.fetch(Q, 1, "w1", 60_000)
    (d,) = batch.deliveries
    assert d.due_ms == ms(job.run_at)
    assert d.leased_ms == batch.now_ms
    assert d.leased_ms >= d.due_ms
