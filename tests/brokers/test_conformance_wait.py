"""Waiting for a job (issue 17): `wait` / `result` return once the job is SUCCEEDED, DEAD or
CANCELLED, whether it finished before or after the call, with one log follower per queue
shared by every waiter; a race of finishes and waits finds no timeout and no wrong result.
"""

from __future__ import annotations

import asyncio

import pytest

from conveyor.brokers.base import AckItem, Broker, FailItem
from conveyor.client import AsyncConveyor
from conveyor.errors import JobFailed, JobNotFound, ValidationError, WaitTimeout
from conveyor.events.waiters import Waiters, _Reads
from conveyor.jobs import JobState
from tests.brokers.conformance import LONG_LEASE_MS, BrokerFactory, Q, enqueue, fetch_one
from tests.brokers.waiter_race import waiter_race
from tests.support.waits import wait_true, wait_until


async def test_a_job_finished_before_the_wait(broker: Broker, raw_client: AsyncConveyor) -> None:
    job = await enqueue(broker)
    d = await fetch_one(broker)
    assert await broker.ack([AckItem(job.id, d.token, '{"answer": 42}')]) == [True]
    assert (await raw_client.wait(job.id, timeout=5)).state == JobState.SUCCEEDED
    assert await raw_client.result(job.id, timeout=0) == {"answer": 42}


async def test_a_job_finished_during_the_wait(broker: Broker, raw_client: AsyncConveyor) -> None:
    job = await enqueue(broker)

    async def finish() -> None:
        await asyncio.sleep(0.2)
        d = await fetch_one(broker)
        assert await broker.ack([AckItem(job.id, d.token, '"done"')]) == [True]

    task = asyncio.create_task(finish())
    assert await raw_client.result(job.id, timeout=10) == "done"
    await task


async def test_failures_and_timeouts(broker: Broker, raw_client: AsyncConveyor) -> None:
    dead = await enqueue(broker)
    d = await fetch_one(broker)
    assert await broker.fail([FailItem(dead.id, d.token, "boom", "it broke")]) == [JobState.DEAD]
    with pytest.raises(JobFailed) as failed:
        await raw_client.result(dead.id, timeout=5)
    assert failed.value.error_code == "boom" and failed.value.job.state == JobState.DEAD

    cancelled = await enqueue(broker)
    waiting = asyncio.create_task(raw_client.result(cancelled.id, timeout=10))
    await asyncio.sleep(0.1)
    await broker.cancel(cancelled.id)
    with pytest.raises(JobFailed) as failed:
        await waiting
    assert failed.value.error_code == "cancelled"

    queued = await enqueue(broker)
    for timeout in (0, 0.2):
        with pytest.raises(WaitTimeout) as late:
            await raw_client.wait(queued.id, timeout=timeout)
        assert late.value.job.state == JobState.QUEUED
    with pytest.raises(JobNotFound):
        await raw_client.wait(f"{Q}:{'0' * 32}", timeout=1)
    for bad in (-1, float("nan"), float("inf"), 86_401, True, "5"):
        with pytest.raises(ValidationError):
            await raw_client.wait(queued.id, timeout=bad)  # type: ignore[arg-type]


async def test_every_waiter_of_a_queue_shares_one_follower(
    broker: Broker, raw_client: AsyncConveyor,
) -> None:
    jobs = [await enqueue(broker) for _ in range(50)]
    other = await enqueue(broker, queue="conf-b")
    waits = [asyncio.create_task(raw_client.wait(j.id, timeout=20)) for j in jobs]
    waits.append(asyncio.create_task(raw_client.wait(other.id, timeout=20)))
    await asyncio.sleep(0.2)
    assert raw_client.waiters.following == [Q, "conf-b"]
    for queue in (Q, "conf-b"):
        batch = await broker.fetch(queue, 100, "w", LONG_LEASE_MS)
        assert await broker.ack([AckItem(d.job_id, d.token) for d in batch.deliveries]) == [
            True] * len(batch.deliveries)
    done = await asyncio.gather(*waits)
    assert {j.state for j in done} == {JobState.SUCCEEDED}


async def test_waiter_race(broker: Broker, raw_client: AsyncConveyor) -> None:
    """The issue's race, scaled down (400 jobs over 2 s; the 10,000 of the issue, half by HTTP:
    tests/chaos/test_chaos_wait.py)."""
    await waiter_race(broker, raw_client, queue=Q, jobs=400, spacing_s=0.005,
                      waiters=[raw_client.wait])


async def test_waiters_survive_gaps_in_a_short_log(make_broker: BrokerFactory) -> None:
    """A log that trims faster than the follower reads: the gap wakes every waiter, which
    re-reads its job; none is left waiting."""
    broker = await make_broker(events_maxlen=10)
    client = AsyncConveyor(broker, validate_types=False)
    try:
        await waiter_race(broker, client, queue=Q, jobs=300, spacing_s=0.001,
                          waiters=[client.wait])
    finally:
        await client.waiters.close()


async def test_a_job_removed_while_waited_on_is_not_found(make_broker: BrokerFactory) -> None:
    """No event tells a removal (retention, then the queue forgotten), nor, with events off,
    a finish: the follower's periodic re-read does. The waiter gets JobNotFound (404 over
    HTTP) long before its timeout; a wait on a job of the forgotten queue, at once, and
    leaves the queue forgotten."""
    broker = await make_broker(events_maxlen=0, retention_s=0)
    waiters = Waiters(broker, recheck_s=0.1)
    try:
        finished = await enqueue(broker, queue="conf-gone")
        removed = await enqueue(broker, queue="conf-gone")
        waits = [asyncio.create_task(waiters.wait(j.id, 60)) for j in (finished, removed)]
        await asyncio.sleep(0.2)
        assert not any(w.done() for w in waits)
        d = await fetch_one(broker, queue="conf-gone")
        assert await broker.ack([AckItem(d.job_id, d.token, '"done"')]) == [True]
        assert (await waits[0]).state == JobState.SUCCEEDED  # events off: seen by the re-read
        d = await fetch_one(broker, queue="conf-gone")
        assert await broker.ack([AckItem(d.job_id, d.token)]) == [True]

        async def both_gone() -> bool:
            await broker.expire_finished("conf-gone")
            return await broker.get_many([finished.id, removed.id]) == [None, None]

        await wait_until(both_gone, "retention to delete both jobs")
        await broker.forget_queue("conf-gone")
        with pytest.raises(JobNotFound):
            await waits[1]
        with pytest.raises(JobNotFound):
            await waiters.wait(removed.id, 60)
        assert "conf-gone" not in await broker.queues()
    finally:
        await waiters.close()


async def test_a_waiter_cancelled_as_it_is_woken_stops(broker: Broker) -> None:
    """A waiter cancelled in the very step its wake-up lands (an HTTP client gone just as
    its job finished) stops at once: the cancel is never lost. Python 3.11's
    `asyncio.wait_for` returned the wake-up instead, and the wait went on to its timeout."""
    job = await enqueue(broker)
    hub = Waiters(broker)
    try:
        task = asyncio.create_task(hub.wait(job.id, 30))

        def parked() -> bool:
            f, reads = hub._followers.get(Q), hub._reads
            return (f is not None and job.id in f.waiters and not reads._pending
                    and (reads._task is None or reads._task.done()))

        await wait_true(parked, "the waiter to register and read its job")
        await asyncio.sleep(0.05)  # past its read: it awaits its wake-up now
        assert not task.done()
        hub._followers[Q].wake(job.id)  # the wake-up and the cancel in one step
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done and task.cancelled()
    finally:
        await hub.close()


async def test_a_read_asked_as_the_waiters_close_is_not_left_waiting(broker: Broker) -> None:
    """A coalesced read asked just before `close`, whose batch had not started: it is
    cancelled, not left pending for ever (its waiter would never return), and a read asked
    after `close` is answered."""
    job = await enqueue(broker)
    reads = _Reads(broker)
    asked = reads.find(job.id)  # its batch's task is made, not yet started
    await reads.close()
    done, _ = await asyncio.wait({asked}, timeout=5)
    assert done and asked.cancelled()
    assert (await reads.get(job.id)).id == job.id
    await reads.close()


async def test_close_ends_the_followers_and_their_waits(broker: Broker) -> None:
    """`close` ends every follower (at its next turn even if a cancel was lost) and its
    waiters answer at once with their jobs as last read, starting no follower again."""
    job = await enqueue(broker)
    hub = Waiters(broker)
    task = asyncio.create_task(hub.wait(job.id, 30))
    await wait_true(lambda: job.id in hub._followers[Q].waiters if hub.following else False,
                    "the waiter to register")
    await asyncio.sleep(0.05)
    await asyncio.wait_for(hub.close(), 5)
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done and task.result().state == JobState.QUEUED
    assert hub.following == []
