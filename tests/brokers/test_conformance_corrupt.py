"""Invariant 10 (check before write): a record that does not parse, met by any transition, is
set aside as DEAD with `corrupt_job` (its message names the field) and every other job of the
same call goes on as if it were not there. Redis does not roll back a script that fails
half-way: a fetch that failed on the third job of a batch left the first two in no index.

Each test plants one damaged record among healthy ones, through the store's own client
(`damage.py`), on every broker.
"""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.brokers.base import AckItem, Broker, FailItem, LeaseRef
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.errors import CorruptJob
from conveyor.jobs import Job, JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    BrokerFactory,
    Q,
    assert_audit_ok,
    enqueue,
    fetch_none,
    wait_broker_time,
)
from tests.brokers.damage import MISSING, damage, indexed_in, raw_fields

#: (field, value) of a damaged record, as `damage` plants it. Each transition checks what it
#: reads (the READS/CHECKS lists of its script, brokers/records.py *_CHECKS); `get()` checks
#: every field (READ_DAMAGE below).
STATE_DAMAGE: list[tuple[str, Any]] = [("state", "zombie")]
FETCH_DAMAGE: list[tuple[str, Any]] = [
    ("attempts", "abc"), ("attempts", "5" * 400), ("max_attempts", MISSING),
    ("max_attempts", "0"), ("timeout", "soon"), ("type", MISSING), *STATE_DAMAGE,
]
PROMOTE_DAMAGE: list[tuple[str, Any]] = [("priority", "x"), ("priority", "1.5"), *STATE_DAMAGE]
REAP_DAMAGE: list[tuple[str, Any]] = [
    ("attempts", "abc"), ("max_attempts", MISSING), ("priority", "x"), ("seq", MISSING),
    *STATE_DAMAGE,
]
ACK_DAMAGE: list[tuple[str, Any]] = [("attempts", "abc"), ("attempts", "5" * 400)]
FAIL_DAMAGE: list[tuple[str, Any]] = [
    ("attempts", "abc"), ("max_attempts", MISSING), ("priority", "1.5"),
]
RELEASE_DAMAGE: list[tuple[str, Any]] = [("attempts", "-1"), ("priority", "x"), ("seq", MISSING)]
CANCEL_DAMAGE: list[tuple[str, Any]] = [("attempts", "abc")]
REQUEUE_DAMAGE: list[tuple[str, Any]] = [("priority", "x"), ("priority", "5000")]
MOVE_DAMAGE: list[tuple[str, Any]] = [
    ("priority", "x"), ("max_attempts", "0"), ("timeout", "soon"), ("redrives", "-"),
]


def _ids(cases: list[tuple[str, Any]]) -> list[str]:
    return [f"{f}={'missing' if v is MISSING else str(v)[:8]}" for f, v in cases]


async def assert_set_aside(broker: Broker, job_id: str, field: str) -> None:
    """The job is DEAD (in the dead index only) with corrupt_job, the message naming `field`."""
    state, code, msg = await raw_fields(broker, job_id, "state", "err_code", "err_msg")
    assert (state, code) == ("dead", "corrupt_job"), (state, code, msg)
    assert field in msg, msg
    assert await indexed_in(broker, job_id) == ["dead"]


def invisible_state(broker: Broker, field: str) -> bool:
    """SQLite finds jobs by their state column: a row whose state is garbage is in no state
    at all, so no transition meets it; the audit reports it (an orphan) instead."""
    return field == "state" and isinstance(broker, SqliteBroker)


async def expect_orphan_then_repair(broker: Broker, job_id: str, state: JobState) -> None:
    report = await broker.audit(Q)
    assert report.orphans == [job_id], report
    await damage(broker, job_id, "state", str(state))


def _run_at_ms(job: Job) -> int:
    assert job.run_at is not None, job
    return int(job.run_at.timestamp() * 1000)


async def _five(broker: Broker, **kw: Any) -> tuple[list[Job], Job]:
    jobs = [await enqueue(broker, i, max_attempts=3, **kw) for i in range(5)]
    return jobs, jobs[2]  # the damaged one sits in the middle of every batch


# --- fetch, promote, reap: the worker's batch scripts ------------------------------------------


@pytest.mark.parametrize(("field", "value"), FETCH_DAMAGE, ids=_ids(FETCH_DAMAGE))
async def test_fetch_sets_a_corrupt_record_aside_and_leases_the_rest(
    broker: Broker, field: str, value: Any
) -> None:
    jobs, bad = await _five(broker)
    await damage(broker, bad.id, field, value)
    batch = await broker.fetch(Q, 10, "w", LONG_LEASE_MS)
    healthy = [j.id for j in jobs if j is not bad]
    assert [d.job_id for d in batch.deliveries] == healthy
    assert all(d.attempts == 1 and d.max_attempts == 3 for d in batch.deliveries)
    for job_id in healthy:
        assert (await broker.get(job_id)).state == JobState.RUNNING
    await fetch_none(broker)
    if invisible_state(broker, field):
        await expect_orphan_then_repair(broker, bad.id, JobState.QUEUED)
        return
    await assert_set_aside(broker, bad.id, field)
    (event,) = await broker.claim_deaths(Q, 10, LONG_LEASE_MS)  # reported to on_dead hooks
    assert event.job_id == bad.id
    assert (await broker.stats([Q]))[Q][JobState.DEAD] == 1
    await assert_audit_ok(broker)


@pytest.mark.parametrize(("field", "value"), PROMOTE_DAMAGE, ids=_ids(PROMOTE_DAMAGE))
async def test_promote_sets_a_corrupt_record_aside_and_promotes_the_rest(
    broker: Broker, field: str, value: Any
) -> None:
    jobs, bad = await _five(broker, delay=0.02)
    await damage(broker, bad.id, field, value)
    await wait_broker_time(broker, max(_run_at_ms(j) for j in jobs) + 1)
    assert await broker.promote_due(Q) == 4
    batch = await broker.fetch(Q, 10, "w", LONG_LEASE_MS)
    assert [d.job_id for d in batch.deliveries] == [j.id for j in jobs if j is not bad]
    if invisible_state(broker, field):
        await expect_orphan_then_repair(broker, bad.id, JobState.SCHEDULED)
        return
    await assert_set_aside(broker, bad.id, field)
    await assert_audit_ok(broker)


async def test_fetch_promotes_past_a_corrupt_scheduled_record(broker: Broker) -> None:
    jobs, bad = await _five(broker, delay=0.02)
    await damage(broker, bad.id, "priority", "high")
    await wait_broker_time(broker, max(_run_at_ms(j) for j in jobs) + 1)
    batch = await broker.fetch(Q, 10, "w", LONG_LEASE_MS)  # promotes first, in one step
    assert [d.job_id for d in batch.deliveries] == [j.id for j in jobs if j is not bad]
    await assert_set_aside(broker, bad.id, "priority")
    await assert_audit_ok(broker)


@pytest.mark.parametrize(("field", "value"), REAP_DAMAGE, ids=_ids(REAP_DAMAGE))
async def test_reap_sets_a_corrupt_record_aside_and_requeues_the_rest(
    broker: Broker, field: str, value: Any
) -> None:
    jobs, bad = await _five(broker)
    batch = await broker.fetch(Q, 10, "w", 30)
    await damage(broker, bad.id, field, value)
    await wait_broker_time(broker, batch.now_ms + 31)
    res = await broker.reap_expired(Q)
    assert (res.requeued, res.dead) == (4, 0)
    again = await broker.fetch(Q, 10, "w2", LONG_LEASE_MS)
    assert [d.job_id for d in again.deliveries] == [j.id for j in jobs if j is not bad]
    if invisible_state(broker, field):
        await expect_orphan_then_repair(broker, bad.id, JobState.RUNNING)
        assert await broker.release([LeaseRef(bad.id, batch.deliveries[2].token)]) == [True]
        return
    await assert_set_aside(broker, bad.id, field)
    await assert_audit_ok(broker)


# --- ack, fail, release, heartbeat: the lease holder's batch calls -----------------------------


async def _leased_with_one_damaged(
    broker: Broker, field: str, value: Any
) -> tuple[list[LeaseRef], LeaseRef]:
    _, bad = await _five(broker)
    batch = await broker.fetch(Q, 10, "w", LONG_LEASE_MS)
    await damage(broker, bad.id, field, value)
    refs = [LeaseRef(d.job_id, d.token) for d in batch.deliveries]
    return refs, refs[2]


@pytest.mark.parametrize(("field", "value"), ACK_DAMAGE, ids=_ids(ACK_DAMAGE))
async def test_ack_sets_a_corrupt_record_aside_and_acks_the_rest(
    broker: Broker, field: str, value: Any
) -> None:
    refs, bad = await _leased_with_one_damaged(broker, field, value)
    acks = await broker.ack([AckItem(r.job_id, r.token, '{"ok": 1}') for r in refs])
    assert acks == [r is not bad for r in refs]
    for r in refs:
        if r is not bad:
            assert (await broker.get(r.job_id)).result == {"ok": 1}
    await assert_set_aside(broker, bad.job_id, field)
    await assert_audit_ok(broker)


@pytest.mark.parametrize(("field", "value"), FAIL_DAMAGE, ids=_ids(FAIL_DAMAGE))
async def test_fail_sets_a_corrupt_record_aside_and_fails_the_rest(
    broker: Broker, field: str, value: Any
) -> None:
    refs, bad = await _leased_with_one_damaged(broker, field, value)
    items = [FailItem(r.job_id, r.token, "e", "m", retry_delay_ms=0) for r in refs]
    assert await broker.fail(items) == [None if r is bad else JobState.QUEUED for r in refs]
    await assert_set_aside(broker, bad.job_id, field)
    await assert_audit_ok(broker)


@pytest.mark.parametrize(("field", "value"), RELEASE_DAMAGE, ids=_ids(RELEASE_DAMAGE))
async def test_release_sets_a_corrupt_record_aside_and_releases_the_rest(
    broker: Broker, field: str, value: Any
) -> None:
    refs, bad = await _leased_with_one_damaged(broker, field, value)
    assert await broker.release(refs) == [r is not bad for r in refs]
    await assert_set_aside(broker, bad.job_id, field)
    await assert_audit_ok(broker)


async def test_heartbeat_extends_the_healthy_leases_of_a_batch(broker: Broker) -> None:
    refs, bad = await _leased_with_one_damaged(broker, "attempts", "abc")
    lost = await broker.heartbeat(refs, LONG_LEASE_MS)
    assert not set(lost) & {r.job_id for r in refs if r is not bad}
    assert await broker.ack([AckItem(r.job_id, r.token) for r in refs if r is not bad]) == [
        True
    ] * 4
    assert await broker.ack([AckItem(bad.job_id, bad.token)]) == [False]
    await assert_set_aside(broker, bad.job_id, "attempts")
    await assert_audit_ok(broker)


# --- operator calls -----------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), CANCEL_DAMAGE + STATE_DAMAGE,
                         ids=_ids(CANCEL_DAMAGE + STATE_DAMAGE))
async def test_cancel_of_a_corrupt_record_sets_it_aside_and_says_so(
    broker: Broker, field: str, value: Any
) -> None:
    jobs, bad = await _five(broker)
    await damage(broker, bad.id, field, value)
    with pytest.raises(CorruptJob) as err:
        await broker.cancel(bad.id)
    assert field in err.value.message and err.value.details["job_id"] == bad.id
    await assert_set_aside(broker, bad.id, field)
    assert (await broker.cancel(jobs[3].id)).state == JobState.CANCELLED
    assert len((await broker.fetch(Q, 10, "w", LONG_LEASE_MS)).deliveries) == 3
    await assert_audit_ok(broker)


async def _dead(broker: Broker, n: int) -> list[Job]:
    jobs = [await enqueue(broker, i, max_attempts=1) for i in range(n)]
    batch = await broker.fetch(Q, n, "w", LONG_LEASE_MS)
    assert await broker.fail([FailItem(d.job_id, d.token, "e", "m") for d in batch.deliveries]
                             ) == [JobState.DEAD] * n
    return jobs


@pytest.mark.parametrize(("field", "value"), REQUEUE_DAMAGE, ids=_ids(REQUEUE_DAMAGE))
async def test_retry_of_a_corrupt_record_is_refused_and_leaves_it_dead(
    broker: Broker, field: str, value: Any
) -> None:
    good, bad = await _dead(broker, 2)
    await damage(broker, bad.id, field, value)
    with pytest.raises(CorruptJob) as err:
        await broker.retry(bad.id)
    assert field in err.value.message
    assert await indexed_in(broker, bad.id) == ["dead"]
    assert (await broker.retry(good.id)).state == JobState.QUEUED
    await assert_audit_ok(broker)


@pytest.mark.parametrize(("field", "value"), REQUEUE_DAMAGE, ids=_ids(REQUEUE_DAMAGE))
async def test_redrive_skips_a_corrupt_record_and_moves_the_rest(
    broker: Broker, field: str, value: Any
) -> None:
    jobs = await _dead(broker, 5)
    bad = jobs[2]
    await damage(broker, bad.id, field, value)
    healthy = [j.id for j in jobs if j is not bad]
    assert await broker.dlq_redrive(Q, dry_run=True) == healthy
    assert await broker.dlq_redrive(Q) == healthy
    assert await broker.dlq_redrive(Q, [bad.id]) == []
    assert await indexed_in(broker, bad.id) == ["dead"]
    assert len((await broker.fetch(Q, 10, "w", LONG_LEASE_MS)).deliveries) == 4
    await assert_audit_ok(broker)


@pytest.mark.parametrize(("field", "value"), MOVE_DAMAGE, ids=_ids(MOVE_DAMAGE))
async def test_move_to_another_queue_skips_a_corrupt_record(
    broker: Broker, field: str, value: Any
) -> None:
    jobs = await _dead(broker, 3)
    bad = jobs[1]
    await damage(broker, bad.id, field, value)
    moved = await broker.dlq_move(Q, [j.id for j in jobs], "elsewhere", "op")
    assert [old for old, _ in moved] == [jobs[0].id, jobs[2].id]
    assert await indexed_in(broker, bad.id) == ["dead"]
    assert len((await broker.fetch("elsewhere", 10, "w", LONG_LEASE_MS)).deliveries) == 2
    await assert_audit_ok(broker)
    await assert_audit_ok(broker, "elsewhere")


async def test_purge_and_retention_delete_corrupt_records(make_broker: BrokerFactory) -> None:
    broker = await make_broker(retention_s=0.0, dlq_retention_s=0.0)
    jobs = await _dead(broker, 3)
    await damage(broker, jobs[0].id, "redrives", "-")
    await damage(broker, jobs[1].id, "attempts", "abc")
    await damage(broker, jobs[2].id, "finished", "never")
    assert await broker.dlq_purge(Q, [jobs[0].id]) == [jobs[0].id]
    assert await broker.expire_finished(Q) == 2  # the dead index's score is the death time
    assert sum((await broker.stats([Q]))[Q].values()) == 0
    await assert_audit_ok(broker)


# --- reading corrupt records back: listings go on, get() says what is wrong ---------------------

#: damage a job can carry that no transition meets again (it is finished), but every read does
READ_DAMAGE: list[Any] = [
    ("result", "1" * 5000),  # a 5,000-digit integer: past Python's int-from-text limit
    ("created", "yesterday"),
    # an integer, but no datetime (year 3170843); SQLite's audit sees the score disagree
    pytest.param("finished", str(10**17), marks=pytest.mark.corrupts_store),
    ("payload", "{not json"),
    ("history", "}{\n"),
]


@pytest.mark.parametrize(("field", "value"), READ_DAMAGE,
                         ids=["result", "created", "finished", "payload", "history"])
async def test_listings_show_a_corrupt_record_as_corrupt_and_go_on(
    broker: Broker, field: str, value: Any
) -> None:
    jobs = [await enqueue(broker, i, max_attempts=1) for i in range(3)]
    batch = await broker.fetch(Q, 3, "w", LONG_LEASE_MS)
    assert await broker.ack([AckItem(d.job_id, d.token, '{"ok": true}')
                             for d in batch.deliveries[:2]]) == [True, True]
    (last,) = batch.deliveries[2:]
    assert await broker.fail([FailItem(last.job_id, last.token, "e", "m")]) == [JobState.DEAD]
    bad = jobs[0] if field != "finished" else jobs[2]
    await damage(broker, bad.id, field, value)
    if field == "result":  # listings read the preview stored at ack time: damage it too
        await damage(broker, bad.id, "result_preview", value)

    with pytest.raises(CorruptJob) as err:
        await broker.get(bad.id)
    assert field in err.value.message and err.value.details == {"job_id": bad.id}
    pages = [
        await broker.list_jobs(queue=Q), await broker.list_jobs(),
        await broker.list_jobs(queue=Q, state=(await raw_state(broker, bad.id))),
    ]
    if bad is jobs[2]:
        pages.append(await broker.dlq_list(Q))
    for page in pages:
        (shown,) = [j for j in page.items if j.id == bad.id]
        assert shown.last_error is not None and shown.last_error.code == "corrupt_job"
        assert field in shown.last_error.message
        others = [j for j in page.items if j.id != bad.id]
        assert all(j.last_error is None or j.last_error.code != "corrupt_job" for j in others)
    assert len(pages[0].items) == 3
    if field != "finished":
        await assert_audit_ok(broker)


async def raw_state(broker: Broker, job_id: str) -> JobState:
    (state,) = await raw_fields(broker, job_id, "state")
    return JobState(state)


@pytest.mark.backend("redis")
@pytest.mark.corrupts_store
async def test_a_corrupt_queue_counter_is_refused_before_any_write(broker: Broker) -> None:
    """The queue's seq counter is INCRed by promote, fetch, fail, retry and enqueue: a value
    INCR cannot take stops each script before its first write, as corrupt_job."""
    assert isinstance(broker, RedisBroker)
    jobs, _ = await _five(broker, delay=0.02)
    await wait_broker_time(broker, max(_run_at_ms(j) for j in jobs) + 1)
    await broker.client.set(broker.keys.queue(Q).seq, "not a number")
    for call in (broker.promote_due(Q), broker.fetch(Q, 10, "w", LONG_LEASE_MS),
                 enqueue(broker, "more")):
        with pytest.raises(CorruptJob):
            await call
    assert (await broker.stats([Q]))[Q][JobState.SCHEDULED] == 5  # nothing moved
    await broker.client.set(broker.keys.queue(Q).seq, "5")
    assert await broker.promote_due(Q) == 5
    await assert_audit_ok(broker)


@pytest.mark.corrupts_store
@pytest.mark.parametrize("field", ["type", "payload", "history"])
async def test_bytes_that_are_not_utf8_never_stop_a_read_or_a_fetch(
    broker: Broker, field: str
) -> None:
    """A record holding bytes that do not decode (damage, or a writer that is not Conveyor):
    reading it back never raises a decoding error. A fetch that leased such a job with others
    would otherwise fail to decode its reply, and its healthy jobs would run only after their
    leases expired; a listing or a job page would answer 500."""
    healthy = [await enqueue(broker, i) for i in range(2)]
    bad = await enqueue(broker, "bad")
    await damage(broker, bad.id, field, b"\xff\xfe not utf-8 \xc3")
    try:
        job = await broker.get(bad.id)
    except CorruptJob as exc:
        assert field in exc.message or "utf" in exc.message.lower()
    else:
        assert job.id == bad.id
    listed = await broker.list_jobs(queue=Q)
    assert {j.id for j in listed.items} == {j.id for j in [*healthy, bad]}
    batch = await broker.fetch(Q, 10, "w", LONG_LEASE_MS)
    assert {d.job_id for d in batch.deliveries} >= {j.id for j in healthy}
