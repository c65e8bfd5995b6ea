"""`LeasingWait` on Redis (issue 19): the blocking wait on a queue's marker and the fetch in one
pipeline, so a job that arrives during the wait comes back leased in that same call, on one
Redis and on Cluster (both keys are in the queue's slot)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from conveyor.brokers.base import AckItem, Broker, LeasingWait, new_ticket
from conveyor.jobs import JobState
from tests.brokers.conformance import LONG_LEASE_MS, Q, enqueue

pytestmark = pytest.mark.backend("redis")


async def test_a_job_enqueued_during_the_wait_comes_back_leased(broker: Broker) -> None:
    assert isinstance(broker, LeasingWait)
    waiting = asyncio.create_task(
        broker.wait_and_fetch(Q, 4, "w1", LONG_LEASE_MS, 5.0, new_ticket()))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # blocked: nothing to lease yet
    job = await enqueue(broker, {"n": 1})
    batch = await asyncio.wait_for(waiting, 3.0)
    assert [d.job_id for d in batch.deliveries] == [job.id]
    got = await broker.get(job.id)
    assert got.state == JobState.RUNNING and got.attempts == 1
    # the lease is the caller's: its token acks the job; nothing else is left to fetch
    assert await broker.ack([AckItem(job.id, batch.deliveries[0].token)]) == [True]
    assert (await broker.fetch(Q, 4, "w2", LONG_LEASE_MS)).deliveries == []


async def test_a_timed_out_wait_still_leases_what_is_there_and_honours_count(
    broker: Broker,
) -> None:
    assert isinstance(broker, LeasingWait)
    empty = await broker.wait_and_fetch(Q, 4, "w1", LONG_LEASE_MS, 0.05, new_ticket())
    assert empty.deliveries == []
    jobs = [await enqueue(broker, {"n": i}) for i in range(3)]
    first = await broker.wait_and_fetch(Q, 2, "w1", LONG_LEASE_MS, 1.0, new_ticket())
    assert [d.job_id for d in first.deliveries] == [j.id for j in jobs[:2]]
    # the fetch passed the wake-up on (work left), so the next wait returns at once
    rest = await asyncio.wait_for(
        broker.wait_and_fetch(Q, 2, "w1", LONG_LEASE_MS, 5.0, new_ticket()), 2.0)
    assert [d.job_id for d in rest.deliveries] == [jobs[2].id]



async def test_a_cancelled_wait_leases_nothing_afterwards(broker: Broker) -> None:
    """Cancelling the call closes its connection while BLPOP blocks: the fetch queued behind
    it on the server is never run, so a job enqueued later stays QUEUED for others."""
    assert isinstance(broker, LeasingWait)
    waiting = asyncio.create_task(
        broker.wait_and_fetch(Q, 4, "w1", LONG_LEASE_MS, 2.0, new_ticket()))
    await asyncio.sleep(0.2)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    job = await enqueue(broker)
    await asyncio.sleep(2.5)  # past the BLPOP's own timeout
    assert (await broker.get(job.id)).state == JobState.QUEUED
    assert [d.job_id for d in (await broker.fetch(Q, 4, "w2", LONG_LEASE_MS)).deliveries] == [
        job.id]


async def test_a_revoked_wait_leases_nothing_though_its_fetch_is_already_queued(
    broker: Broker,
) -> None:
    """The fetch behind the BLPOP is on the server already, where no cancel reaches it: a
    revoked ticket makes it lease nothing when the wake-up comes, and the wake-up is passed
    on, so the job is there for the next fetch."""
    assert isinstance(broker, LeasingWait)
    ticket = new_ticket()
    waiting = asyncio.create_task(broker.wait_and_fetch(Q, 4, "w1", LONG_LEASE_MS, 5.0, ticket))
    await asyncio.sleep(0.2)
    assert await broker.revoke_wait(Q, ticket) is True  # it had not leased
    job = await enqueue(broker)  # wakes the BLPOP: its fetch runs now, revoked
    batch = await asyncio.wait_for(waiting, 3.0)
    assert batch.deliveries == []
    assert (await broker.get(job.id)).state == JobState.QUEUED
    # the marker was pushed again (count 0 passes the wake-up on): the next wait returns
    again = await asyncio.wait_for(
        broker.wait_and_fetch(Q, 4, "w2", LONG_LEASE_MS, 5.0, new_ticket()), 2.0)
    assert [d.job_id for d in again.deliveries] == [job.id]


async def test_revoking_a_wait_that_leased_says_so(broker: Broker) -> None:
    """Revoked after its fetch ran: False, the reply (with its leases) is the caller's."""
    assert isinstance(broker, LeasingWait)
    job = await enqueue(broker)
    ticket = new_ticket()
    batch = await broker.wait_and_fetch(Q, 4, "w1", LONG_LEASE_MS, 1.0, ticket)
    assert [d.job_id for d in batch.deliveries] == [job.id]
    assert await broker.revoke_wait(Q, ticket) is False


async def test_a_wait_ticket_is_a_short_plain_name(broker: Broker) -> None:
    assert isinstance(broker, LeasingWait)
    for bad in ("", "a:b", "x" * 65, "{q}"):
        with pytest.raises(ValueError):
            await broker.wait_and_fetch(Q, 1, "w1", LONG_LEASE_MS, 0.01, bad)
        with pytest.raises(ValueError):
            await broker.revoke_wait(Q, bad)
