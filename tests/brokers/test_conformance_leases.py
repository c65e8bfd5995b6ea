"""Invariants 3 (fenced leases) and 4 (at-least-once): stale tokens change nothing, an expired
lease is redelivered, and a heartbeat keeps a lease alive past its first deadline.
"""

from __future__ import annotations

from conveyor.brokers.base import AckItem, Broker, FailItem, LeaseRef
from conveyor.ids import new_job_id
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    BrokerFactory,
    Q,
    assert_audit_ok,
    deliver_with_short_lease,
    enqueue,
    expire_and_reap,
    fetch_none,
    fetch_one,
    wait_broker_time,
)
from tests.brokers.damage import restore, snapshot


async def test_stale_token_is_rejected_and_changes_nothing(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=5)
    old, now = await deliver_with_short_lease(broker, 30)
    assert await expire_and_reap(broker, now, 30) == (1, 0)
    new = await fetch_one(broker, worker="w2")
    assert new.job_id == job.id
    assert new.token != old.token

    before = await broker.get(job.id)
    stale = LeaseRef(job.id, old.token)
    assert await broker.ack([AckItem(job.id, old.token)]) == [False]
    assert await broker.fail([FailItem(job.id, old.token, "e", "late", retry_delay_ms=0)]) == [None]
    assert await broker.fail([FailItem(job.id, old.token, "e", "late")]) == [None]
    assert await broker.heartbeat([stale], LONG_LEASE_MS) == [job.id]
    assert await broker.release([stale]) == [False]
    assert await broker.get(job.id) == before

    assert await broker.ack([AckItem(job.id, new.token)]) == [True]
    assert (await broker.get(job.id)).state == JobState.SUCCEEDED
    await assert_audit_ok(broker)


async def test_token_changes_on_every_delivery(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=3)
    tokens: list[str] = []
    for _ in range(3):  # release: redelivered, attempt not charged
        d = await fetch_one(broker)
        tokens.append(d.token)
        assert await broker.release([LeaseRef(job.id, d.token)]) == [True]
    d = await fetch_one(broker)
    tokens.append(d.token)
    assert await broker.fail([FailItem(job.id, d.token, "e", "m", retry_delay_ms=0)]) == [
        JobState.QUEUED
    ]
    d = await fetch_one(broker)
    tokens.append(d.token)
    assert await broker.fail([FailItem(job.id, d.token, "e", "m")]) == [JobState.DEAD]
    await broker.retry(job.id)  # a manual retry must not reuse an old token either
    d = await fetch_one(broker)
    tokens.append(d.token)
    assert len(set(tokens)) == len(tokens), tokens
    assert all(tokens)
    await assert_audit_ok(broker)


async def test_lease_calls_on_a_job_that_is_not_running_are_rejected(broker: Broker) -> None:
    job = await enqueue(broker)
    before = await broker.get(job.id)
    for token in ("", "0", "1", "2"):
        ref = LeaseRef(job.id, token)
        assert await broker.ack([AckItem(job.id, token)]) == [False]
        assert await broker.fail([FailItem(job.id, token, "e", "m")]) == [None]
        assert await broker.heartbeat([ref], LONG_LEASE_MS) == [job.id]
        assert await broker.release([ref]) == [False]
    assert await broker.get(job.id) == before

    d = await fetch_one(broker)
    assert await broker.ack([AckItem(job.id, "")]) == [False]  # running, wrong token
    assert await broker.ack([AckItem(job.id, d.token)]) == [True]
    done = await broker.get(job.id)
    # the same lease's ack again (a resent call whose reply was lost): accepted, no change
    assert await broker.ack([AckItem(job.id, d.token)]) == [True]
    assert await broker.get(job.id) == done
    assert await broker.ack([AckItem(job.id, "")]) == [False]
    assert await broker.release([LeaseRef(job.id, d.token)]) == [False]
    assert await broker.fail([FailItem(job.id, d.token, "e", "m")]) == [None]
    assert await broker.get(job.id) == done

    ghost = new_job_id(Q)
    assert await broker.ack([AckItem(ghost, "1")]) == [False]
    assert await broker.heartbeat([LeaseRef(ghost, "1")], LONG_LEASE_MS) == [ghost]
    await assert_audit_ok(broker)


async def test_batch_calls_judge_each_item_on_its_own(broker: Broker) -> None:
    a, b, c = [await enqueue(broker, i) for i in range(3)]
    da, db, dc = [await fetch_one(broker) for _ in range(3)]
    assert [da.job_id, db.job_id, dc.job_id] == [a.id, b.id, c.id]
    lost = await broker.heartbeat(
        [LeaseRef(a.id, da.token), LeaseRef(b.id, "nope"), LeaseRef(c.id, dc.token)],
        LONG_LEASE_MS,
    )
    assert lost == [b.id]
    acks = await broker.ack(
        [AckItem(a.id, da.token), AckItem(b.id, "nope"), AckItem(c.id, dc.token)]
    )
    assert acks == [True, False, True]
    assert (await broker.get(b.id)).state == JobState.RUNNING
    await assert_audit_ok(broker)


async def test_expired_lease_is_redelivered(broker: Broker) -> None:
    job = await enqueue(broker, {"n": 1}, max_attempts=3)
    first, now = await deliver_with_short_lease(broker, 50)
    assert first.attempts == 1
    assert await expire_and_reap(broker, now, 50) == (1, 0)
    again = await fetch_one(broker, worker="w2")
    assert again.job_id == job.id
    assert again.attempts == 2
    assert again.payload_json == first.payload_json
    got = await broker.get(job.id)
    assert got.state == JobState.RUNNING
    assert [h.outcome for h in got.history] == ["lease_expired"]
    assert got.history[0].error_code == "lease_expired"
    assert got.history[0].worker == "w-short"
    await assert_audit_ok(broker)


async def test_lease_is_not_reaped_before_its_deadline(broker: Broker) -> None:
    await enqueue(broker)
    await fetch_one(broker, lease_ms=LONG_LEASE_MS)
    assert (await broker.reap_expired(Q)).requeued == 0
    await fetch_none(broker)
    await assert_audit_ok(broker)


async def test_heartbeat_extends_the_deadline(broker: Broker) -> None:
    job = await enqueue(broker)
    d, now = await deliver_with_short_lease(broker, 300)
    assert await broker.heartbeat([LeaseRef(job.id, d.token)], LONG_LEASE_MS) == []
    await wait_broker_time(broker, now + 300 + 1)
    res = await broker.reap_expired(Q)
    assert (res.requeued, res.dead) == (0, 0)
    assert (await broker.get(job.id)).state == JobState.RUNNING
    assert await broker.ack([AckItem(job.id, d.token)]) == [True]
    await assert_audit_ok(broker)


async def test_every_orphaned_job_ends_succeeded_or_dead(broker: Broker) -> None:
    """Invariant 4 end to end: workers that vanish mid-job cannot lose a job."""
    jobs = [await enqueue(broker, i, max_attempts=2) for i in range(6)]
    for expected in [(6, 0), (0, 6)]:  # every delivery is abandoned: the worker "died"
        batch = await broker.fetch(Q, 10, "doomed", 30)
        assert len(batch.deliveries) == 6
        assert await expire_and_reap(broker, batch.now_ms, 30) == expected
    batch = await broker.fetch(Q, 10, "doomed", 30)
    assert batch.deliveries == []
    states = {(await broker.get(j.id)).state for j in jobs}
    assert states == {JobState.DEAD}
    await assert_audit_ok(broker)


async def test_a_lost_lease_write_never_reissues_the_same_token(broker: Broker) -> None:
    """Invariant 3 after a lost write: the record that issued a lease rolls back (a restart
    from a stale AOF, a failover to a lagging replica), the job is leased again to another
    worker, and the first worker's calls must still be refused: a token is never reissued."""
    job = await enqueue(broker, max_attempts=5)
    before_fetch = await snapshot(broker, job.id)
    first = await fetch_one(broker, worker="w1")
    await restore(broker, before_fetch)  # the write that issued `first` is lost
    second = await fetch_one(broker, worker="w2")
    assert second.job_id == job.id
    assert second.token != first.token

    held = await broker.get(job.id)
    stale = LeaseRef(job.id, first.token)
    assert await broker.heartbeat([stale], LONG_LEASE_MS) == [job.id]
    assert await broker.ack([AckItem(job.id, first.token)]) == [False]
    assert await broker.fail([FailItem(job.id, first.token, "e", "late")]) == [None]
    assert await broker.release([stale]) == [False]
    assert await broker.get(job.id) == held

    assert await broker.ack([AckItem(job.id, second.token)]) == [True]
    assert (await broker.get(job.id)).history[-1].worker == "w2"
    await assert_audit_ok(broker)


async def test_tokens_are_unique_across_brokers_and_batches(make_broker: BrokerFactory) -> None:
    """Two broker instances (two processes) leasing the same rolled-back job, and every job of
    one batch: no token repeats."""
    one, two = await make_broker(), await make_broker()
    jobs = [await enqueue(one, i) for i in range(5)]
    snaps = [await snapshot(one, j.id) for j in jobs]
    tokens = [d.token for d in (await one.fetch(Q, 5, "w1", LONG_LEASE_MS)).deliveries]
    for snap in snaps:
        await restore(one, snap)
    tokens += [d.token for d in (await two.fetch(Q, 5, "w2", LONG_LEASE_MS)).deliveries]
    assert len(tokens) == 10 and len(set(tokens)) == 10, tokens
    await assert_audit_ok(one)
