"""Cancelling a RUNNING job (DESIGN.md): `cancel` records a request for the current delivery,
the holder learns it from its heartbeat's reply and ends the job CANCELLED itself, fenced by
its lease; a holder that is gone leaves it to reaping, which ends it CANCELLED, never QUEUED.
"""

from __future__ import annotations

from conveyor.brokers.base import AckItem, Broker, FailItem, LeaseRef
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    Q,
    assert_audit_ok,
    assert_in_one_state,
    deliver_with_short_lease,
    enqueue,
    expire_and_reap,
    fetch_none,
    fetch_one,
    wait_broker_time,
)


async def test_cancel_of_a_running_job_is_a_request_its_heartbeat_carries(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=3)
    d = await fetch_one(broker, worker="w-run")
    running = await broker.get(job.id)
    assert running.worker == "w-run" and not running.cancel_requested
    asked = await broker.cancel(job.id, actor="api")
    assert asked.state == JobState.RUNNING
    assert asked.cancel_requested and asked.cancel_requested_by == "api"
    assert asked.worker == "w-run"
    again = await broker.cancel(job.id, actor="api")  # asking twice is harmless
    assert again.state == JobState.RUNNING and again.cancel_requested
    await assert_in_one_state(broker, job.id, JobState.RUNNING)

    other = await enqueue(broker)
    d2 = await fetch_one(broker)
    reply = await broker.heartbeat([LeaseRef(job.id, d.token), LeaseRef(other.id, d2.token)],
                                   LONG_LEASE_MS)
    assert list(reply) == []  # no lease lost
    assert reply.cancel_requested == {job.id: "api"}  # only the job asked to stop
    await assert_audit_ok(broker)


async def test_only_the_lease_holder_ends_a_cancelled_job(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=3)
    old, now = await deliver_with_short_lease(broker, 30)
    assert await expire_and_reap(broker, now, 30) == (1, 0)
    d = await fetch_one(broker, worker="w2")
    await broker.cancel(job.id, actor="operator-1")
    # the stale holder's heartbeat hears nothing of it, and it cannot end the job
    stale = await broker.heartbeat([LeaseRef(job.id, old.token)], LONG_LEASE_MS)
    assert list(stale) == [job.id] and stale.cancel_requested == {}
    assert await broker.cancel_running([LeaseRef(job.id, old.token)]) == [False]
    assert (await broker.get(job.id)).state == JobState.RUNNING

    assert await broker.cancel_running([LeaseRef(job.id, d.token)]) == [True]
    done = await assert_in_one_state(broker, job.id, JobState.CANCELLED)
    assert done.finished_at is not None and not done.cancel_requested and done.worker is None
    assert done.last_error is not None and done.last_error.code == "cancelled"
    assert "operator-1" in done.last_error.message
    last = done.history[-1]
    assert (last.outcome, last.error_code, last.worker) == ("cancelled", "cancelled", "w2")
    assert last.message is not None and "operator-1" in last.message
    # once ended, the lease is gone: nothing more from that token
    assert await broker.cancel_running([LeaseRef(job.id, d.token)]) == [False]
    assert await broker.ack([AckItem(job.id, d.token)]) == [False]
    assert list(await broker.heartbeat([LeaseRef(job.id, d.token)], LONG_LEASE_MS)) == [job.id]
    await fetch_none(broker)
    await assert_audit_ok(broker)


async def test_cancel_running_needs_a_request(broker: Broker) -> None:
    job = await enqueue(broker)
    d = await fetch_one(broker)
    assert await broker.cancel_running([LeaseRef(job.id, d.token)]) == [False]
    assert (await broker.get(job.id)).state == JobState.RUNNING
    assert await broker.ack([AckItem(job.id, d.token)]) == [True]
    await assert_audit_ok(broker)


async def test_reap_ends_a_cancel_requested_job_cancelled_not_queued(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=5)
    d, now = await deliver_with_short_lease(broker, 30)
    await broker.cancel(job.id, actor="api")
    assert await expire_and_reap(broker, now, 30) == (0, 0)
    done = await assert_in_one_state(broker, job.id, JobState.CANCELLED)
    assert done.history[-1].outcome == "cancelled"
    assert done.history[-1].message is not None and "api" in done.history[-1].message
    await fetch_none(broker)
    assert await broker.cancel_running([LeaseRef(job.id, d.token)]) == [False]
    await assert_audit_ok(broker)


async def test_reap_counts_the_jobs_it_cancelled(broker: Broker) -> None:
    await enqueue(broker, max_attempts=5)
    job = (await broker.list_jobs(queue=Q)).items[0]
    _, now = await deliver_with_short_lease(broker, 30)
    await broker.cancel(job.id)
    await wait_broker_time(broker, now + 31)
    res = await broker.reap_expired(Q)
    assert (res.requeued, res.dead, res.cancelled) == (0, 0, 1)
    await assert_audit_ok(broker)


async def test_a_failed_attempt_of_a_delivery_asked_to_stop_ends_cancelled(
    broker: Broker,
) -> None:
    """The attempt failed before its worker heard of the request: no retry, whatever its
    delay and attempts left, and no death either (the operator's cancel wins)."""
    for delay in (0, 60_000, None):
        job = await enqueue(broker, max_attempts=3)
        d = await fetch_one(broker)
        await broker.cancel(job.id, actor="ops")
        assert await broker.fail([FailItem(job.id, d.token, "boom", "it broke", "tb...",
                                           retry_delay_ms=delay)]) == [JobState.CANCELLED]
        done = await assert_in_one_state(broker, job.id, JobState.CANCELLED)
        assert done.last_error is not None and done.last_error.code == "cancelled"
        assert "ops" in done.last_error.message and "boom" in done.last_error.message
        assert done.history[-1].outcome == "cancelled"
        assert done.history[-1].traceback == "tb..."
    await fetch_none(broker)
    assert await broker.claim_deaths(Q, 10, LONG_LEASE_MS) == []
    await assert_audit_ok(broker)


async def test_a_request_binds_the_delivery_it_was_made_for(broker: Broker) -> None:
    """A delivery that ended otherwise (here: released by a stopping worker before it heard
    of the request) leaves no request behind for the next one."""
    job = await enqueue(broker, max_attempts=3)
    d = await fetch_one(broker)
    await broker.cancel(job.id)
    assert await broker.release([LeaseRef(job.id, d.token)]) == [True]
    assert not (await broker.get(job.id)).cancel_requested
    d2 = await fetch_one(broker)
    assert not (await broker.get(job.id)).cancel_requested
    reply = await broker.heartbeat([LeaseRef(job.id, d2.token)], LONG_LEASE_MS)
    assert list(reply) == [] and reply.cancel_requested == {}
    assert await broker.cancel_running([LeaseRef(job.id, d2.token)]) == [False]
    assert await broker.ack([AckItem(job.id, d2.token)]) == [True]
    await assert_audit_ok(broker)
