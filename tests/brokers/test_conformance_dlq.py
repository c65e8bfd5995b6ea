"""The DLQ calls on every backend: the bounded scan and its selectors, redrive in place or
into another queue (with dry runs), purge, the redrive counter, and the death events written
in the same step that makes a job DEAD (fail and reap), claimed under a lease.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conveyor.brokers.base import Broker, DeadSelector, FailItem
from conveyor.brokers.redis import RedisBroker
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.brokers.sqlite.schema import MIGRATIONS
from conveyor.errors import JobNotFound, ValidationError
from conveyor.ids import split_job_id
from conveyor.jobs import JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    TYPE,
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

OTHER = "conf-other"


async def _kill(broker: Broker, n: int = 1, *, type: str = TYPE, code: str = "e",
                queue: str = Q, **kw: object) -> list[str]:
    """n dead jobs that die together (one fail call: the same death ms)."""
    ids = [(await enqueue(broker, i, queue=queue, type=type, max_attempts=3, **kw)).id
           for i in range(n)]
    batch = await broker.fetch(queue, n, "w", LONG_LEASE_MS)
    assert sorted(d.job_id for d in batch.deliveries) == sorted(ids)
    items = [FailItem(d.job_id, d.token, code, "failed") for d in batch.deliveries]
    assert await broker.fail(items) == [JobState.DEAD] * n
    return ids


async def _died_ms(broker: Broker, job_id: str) -> int:
    job = await broker.get(job_id)
    assert job.finished_at is not None
    return int(job.finished_at.timestamp() * 1000)


async def _scan_all(broker: Broker, sel: DeadSelector | None, *, limit: int = 3,
                    scan: int = 4, queue: str = Q) -> list[str]:
    """Page through the whole selection with small pages; every call bounded."""
    found: list[str] = []
    cursor = None
    for _ in range(200):
        page = await broker.dlq_scan(queue, sel, limit=limit, cursor=cursor, scan=scan)
        assert len(page.ids) <= limit
        found += page.ids
        cursor = page.cursor
        if page.done:
            return found
    raise AssertionError("the scan never finished")


# --- scan and selectors ---------------------------------------------------------------------


async def test_scan_walks_the_dead_index_oldest_death_first(broker: Broker) -> None:
    first = await _kill(broker, 5)  # one batch: five deaths in the same millisecond
    await wait_broker_time(broker, await _died_ms(broker, first[0]) + 2)
    second = await _kill(broker, 4)
    found = await _scan_all(broker, None)
    assert found[:5] == sorted(first) and found[5:] == sorted(second)  # ties by uid
    assert len(found) == len(set(found)) == 9
    page = await broker.dlq_scan(Q, None, limit=100)
    assert page.ids == found and page.done


async def test_scan_selects_by_type_and_error_code(broker: Broker) -> None:
    a_x = await _kill(broker, 2, type="a", code="x")
    a_y = await _kill(broker, 2, type="a", code="y")
    b_x = await _kill(broker, 3, type="b", code="x")
    assert sorted(await _scan_all(broker, DeadSelector(type="a"))) == sorted(a_x + a_y)
    assert sorted(await _scan_all(broker, DeadSelector(error_code="x"))) == sorted(a_x + b_x)
    assert sorted(await _scan_all(broker, DeadSelector(type="a", error_code="y"))) == sorted(a_y)
    assert await _scan_all(broker, DeadSelector(type="c")) == []
    # sparse matches: a page may hold nothing while the walk goes on
    page = await broker.dlq_scan(Q, DeadSelector(type="b"), limit=1, scan=2)
    assert page.ids == [] and not page.done and page.cursor is not None


async def test_scan_selects_by_death_time_half_open(broker: Broker) -> None:
    (early,) = await _kill(broker)
    t_early = await _died_ms(broker, early)
    await wait_broker_time(broker, t_early + 2)
    (mid,) = await _kill(broker)
    t_mid = await _died_ms(broker, mid)
    await wait_broker_time(broker, t_mid + 2)
    (late,) = await _kill(broker)

    assert await _scan_all(broker, DeadSelector(died_after_ms=t_mid)) == [mid, late]
    assert await _scan_all(broker, DeadSelector(died_before_ms=t_mid)) == [early]
    assert await _scan_all(broker, DeadSelector(died_after_ms=t_early + 1,
                                                died_before_ms=t_mid + 1)) == [mid]


async def test_scan_cursor_survives_jobs_leaving_the_index(broker: Broker) -> None:
    ids = await _kill(broker, 7)
    page = await broker.dlq_scan(Q, None, limit=3)
    assert page.ids == sorted(ids)[:3]
    assert await broker.dlq_redrive(Q, page.ids) == page.ids
    rest = await broker.dlq_scan(Q, None, limit=100, cursor=page.cursor)
    assert rest.ids == sorted(ids)[3:] and rest.done


async def test_scan_refuses_a_bad_cursor(broker: Broker) -> None:
    for bad in ("x", "12:zz", ":", "1" * 20 + ":" + "0" * 32):
        with pytest.raises(ValidationError):
            await broker.dlq_scan(Q, None, cursor=bad)


async def test_the_policy_fields_skip_poison_and_exhausted_jobs(broker: Broker) -> None:
    (plain,) = await _kill(broker, code="boom")
    (poison,) = await _kill(broker, code="lease_expired")
    (again,) = await _kill(broker, code="boom")
    assert await broker.dlq_redrive(Q, [again]) == [again]  # redriven once ...
    d = await fetch_one(broker)
    assert await broker.fail([FailItem(d.job_id, d.token, "boom", "m")]) == [JobState.DEAD]
    sel = DeadSelector(skip_error_codes=("lease_expired",), max_redrives=1)
    assert await _scan_all(broker, sel) == [plain]  # ... so out of redrives at max 1
    assert await broker.dlq_redrive(Q, [poison, again, plain], selector=sel) == [plain]
    assert sorted(await _scan_all(broker, DeadSelector(max_redrives=2))) == sorted([poison, again])


# --- redrive in place -------------------------------------------------------------------------


async def test_redrive_records_who_redrove_the_job_and_when(broker: Broker) -> None:
    (job_id,) = await _kill(broker)
    before = await broker.now_ms()
    assert await broker.dlq_redrive(Q, [job_id], actor="cli:alice") == [job_id]
    job = await broker.get(job_id)
    assert job.state == JobState.QUEUED and job.attempts == 0 and job.finished_at is None
    entry = job.history[-1]
    assert (entry.outcome, entry.worker) == ("redriven", "cli:alice")
    assert entry.message is not None and "cli:alice" in entry.message
    assert entry.finished_at is not None and entry.finished_at.timestamp() * 1000 >= before - 1
    assert [h.outcome for h in job.history] == ["dead", "redriven"]
    assert (await fetch_one(broker)).job_id == job_id
    await assert_audit_ok(broker)


async def test_redrive_dry_run_changes_nothing(broker: Broker) -> None:
    ids = await _kill(broker, 3, type="a")
    live = await enqueue(broker)
    snapshot = [await broker.get(i) for i in ids]
    stats = await broker.stats([Q])
    assert sorted(await broker.dlq_redrive(Q, [*ids, live.id], dry_run=True)) == sorted(ids)
    assert sorted(await broker.dlq_redrive(Q, dry_run=True)) == sorted(ids)
    assert await broker.dlq_redrive(Q, ids, selector=DeadSelector(type="b"), dry_run=True) == []
    assert sorted(await broker.dlq_purge(Q, ids, dry_run=True)) == sorted(ids)
    assert [await broker.get(i) for i in ids] == snapshot
    assert await broker.stats([Q]) == stats


async def test_redrive_by_ids_rechecks_the_selector(broker: Broker) -> None:
    (a,) = await _kill(broker, type="a", code="x")
    (b,) = await _kill(broker, type="b", code="x")
    assert await broker.dlq_redrive(Q, [a, b], selector=DeadSelector(type="b")) == [b]
    assert (await broker.get(a)).state == JobState.DEAD
    assert await broker.dlq_redrive(Q, [a], selector=DeadSelector(error_code="y")) == []


async def test_redrive_oldest_in_a_death_range(broker: Broker) -> None:
    old = await _kill(broker, 2)
    await wait_broker_time(broker, await _died_ms(broker, old[0]) + 2)
    (new,) = await _kill(broker)
    t_new = await _died_ms(broker, new)
    sel = DeadSelector(died_before_ms=t_new)
    assert sorted(await broker.dlq_redrive(Q, None, 10, selector=sel)) == sorted(old)
    assert (await broker.get(new)).state == JobState.DEAD


# --- redrive into another queue ---------------------------------------------------------------


async def test_move_makes_a_new_job_in_the_target_queue(broker: Broker) -> None:
    job = await enqueue(broker, {"k": [1, 2]}, priority=7, max_attempts=4, timeout_s=12.5,
                        limit_key="tenant-1")
    d = await fetch_one(broker)
    assert await broker.fail([FailItem(job.id, d.token, "e", "gone")]) == [JobState.DEAD]
    old = await broker.get(job.id)

    ((old_id, new_id),) = await broker.dlq_move(Q, [job.id], OTHER, "api")
    assert old_id == job.id and split_job_id(new_id)[0] == OTHER
    with pytest.raises(JobNotFound):
        await broker.get(job.id)
    new = await broker.get(new_id)
    assert new.state == JobState.QUEUED and new.attempts == 0
    assert (new.type, new.payload, new.priority, new.max_attempts, new.timeout_s,
            new.limit_key) == (
        old.type, old.payload, old.priority, old.max_attempts, old.timeout_s, "tenant-1"
    )
    assert new.history[:-1] == old.history
    entry = new.history[-1]
    assert entry.outcome == "redriven" and entry.worker == "api"
    assert entry.message is not None and job.id in entry.message
    assert OTHER in await broker.queues()
    assert (await fetch_one(broker, queue=OTHER)).job_id == new_id
    await fetch_none(broker)
    await assert_audit_ok(broker)
    await assert_audit_ok(broker, OTHER)


async def test_move_skips_jobs_that_are_not_dead_or_do_not_match(broker: Broker) -> None:
    (a,) = await _kill(broker, type="a")
    (b,) = await _kill(broker, type="b")
    live = await enqueue(broker)
    moved = await broker.dlq_move(Q, [a, b, live.id], OTHER, "api", selector=DeadSelector(type="a"))
    assert [old for old, _ in moved] == [a]
    assert (await broker.get(b)).state == JobState.DEAD
    assert (await broker.get(live.id)).state == JobState.QUEUED
    with pytest.raises(ValidationError):
        await broker.dlq_move(Q, [b], Q, "api")


@pytest.mark.backend("redis")  # SQLite moves in one transaction: nothing to cut in two
async def test_a_move_cut_by_a_crash_is_retried_without_a_duplicate(broker: Broker) -> None:
    assert isinstance(broker, RedisBroker)
    (job_id,) = await _kill(broker)
    dlq = broker._dlq
    plans = await dlq.plan_move(Q, [split_job_id(job_id)[1]], OTHER, None)
    (copy_uid,) = await dlq.copy(OTHER, "api", plans)  # step 1 done, then the crash
    assert (await broker.get(job_id)).state == JobState.DEAD

    ((old, new),) = await broker.dlq_move(Q, [job_id], OTHER, "api")  # the retry
    assert (old, new) == (job_id, f"{OTHER}:{copy_uid}")
    listed = await broker.list_jobs(queue=OTHER, limit=100)
    assert [j.id for j in listed.items] == [new]
    with pytest.raises(JobNotFound):
        await broker.get(job_id)
    await assert_audit_ok(broker, OTHER)


# --- purge ------------------------------------------------------------------------------------


async def test_purge_with_a_selector(broker: Broker) -> None:
    a = await _kill(broker, 2, type="a")
    b = await _kill(broker, 2, type="b")
    purged = await broker.dlq_purge(Q, None, 100, selector=DeadSelector(type="a"))
    assert sorted(purged) == sorted(a)
    for job_id in a:
        with pytest.raises(JobNotFound):
            await broker.get(job_id)
    assert sorted(await _scan_all(broker, None)) == sorted(b)
    assert await broker.dlq_purge(Q, b, selector=DeadSelector(type="a")) == []


# --- the redrive counter and death events -----------------------------------------------------


async def test_fail_records_a_death_event_claimed_under_a_lease(broker: Broker) -> None:
    (job_id,) = await _kill(broker, type="a")
    (event,) = await broker.claim_deaths(Q, 10, LONG_LEASE_MS)
    assert (event.job_id, event.type, event.redrives) == (job_id, "a", 0)
    assert await broker.claim_deaths(Q, 10, LONG_LEASE_MS) == []  # claimed: not handed out
    assert await broker.ack_deaths(Q, [event]) == 1
    assert await broker.ack_deaths(Q, [event]) == 0


async def test_an_unacked_claim_comes_back_after_its_lease(broker: Broker) -> None:
    await _kill(broker)
    claimed_at = await broker.now_ms()
    (event,) = await broker.claim_deaths(Q, 10, 50)  # the claimer "crashes" here
    await wait_broker_time(broker, claimed_at + 60)
    assert await broker.claim_deaths(Q, 10, LONG_LEASE_MS) == [event]


async def test_each_death_of_a_job_is_its_own_event(broker: Broker) -> None:
    (job_id,) = await _kill(broker)
    first = await broker.claim_deaths(Q, 10, LONG_LEASE_MS)
    await broker.ack_deaths(Q, first)
    await broker.retry(job_id)  # a manual retry counts as a redrive too
    d = await fetch_one(broker)
    assert await broker.fail([FailItem(job_id, d.token, "e", "again")]) == [JobState.DEAD]
    (second,) = await broker.claim_deaths(Q, 10, LONG_LEASE_MS)
    assert (second.job_id, second.redrives) == (job_id, 1)
    # and the counter bounds policies: one redrive so far
    assert await broker.dlq_redrive(Q, [job_id], selector=DeadSelector(max_redrives=1)) == []


async def test_a_poison_job_is_quarantined_with_its_death_event(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=2)
    for expected in ((1, 0), (0, 1)):  # the lease expires on both allowed attempts
        d, fetched_at = await deliver_with_short_lease(broker)
        assert d.job_id == job.id
        assert await expire_and_reap(broker, fetched_at, 30) == expected
    dead = await broker.get(job.id)
    assert dead.state == JobState.DEAD
    assert dead.last_error is not None and dead.last_error.code == "lease_expired"
    await fetch_none(broker)  # never runs again on its own
    (event,) = await broker.claim_deaths(Q, 10, LONG_LEASE_MS)
    assert event.job_id == job.id
    assert await _scan_all(broker, DeadSelector(skip_error_codes=("lease_expired",))) == []


async def test_purging_a_job_drops_its_pending_death_event(broker: Broker) -> None:
    (job_id,) = await _kill(broker)
    assert await broker.dlq_purge(Q, [job_id]) == [job_id]
    assert await broker.claim_deaths(Q, 10, LONG_LEASE_MS) == []


async def test_retention_takes_death_events_with_their_jobs(make_broker: BrokerFactory) -> None:
    broker = await make_broker(dlq_retention_s=0.05)
    (job_id,) = await _kill(broker)
    await wait_broker_time(broker, await _died_ms(broker, job_id) + 60)
    assert await broker.expire_finished(Q) == 1
    assert await broker.claim_deaths(Q, 10, LONG_LEASE_MS) == []


@pytest.mark.backend("sqlite")
async def test_a_version_1_file_is_upgraded_for_the_dlq(backend: str, tmp_path: Path) -> None:
    """A dead job stored before the DLQ columns existed is redriven like any other."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
                 " applied_ms INTEGER NOT NULL)")
    for sql in MIGRATIONS[0][1]:
        conn.execute(sql)
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    conn.execute(
        "INSERT INTO jobs (queue, uid, type, payload, state, score, priority, seq, max_attempts,"
        " created_ms, finished_ms, err_code, err_msg) VALUES (?, ?, 't', 'null', 'dead', 5, 0,"
        " 1, 1, 1, 5, 'e', 'old')", (Q, "0" * 32),
    )
    conn.execute("INSERT INTO queues (name, seq) VALUES (?, 1)", (Q,))
    conn.commit()
    conn.close()
    broker = SqliteBroker(path)
    await broker.connect()
    try:
        job_id = f"{Q}:{'0' * 32}"
        assert (await broker.dlq_scan(Q, DeadSelector(max_redrives=1))).ids == [job_id]
        assert await broker.dlq_redrive(Q, [job_id]) == [job_id]
        assert (await broker.get(job_id)).state == JobState.QUEUED
        await assert_audit_ok(broker)
    finally:
        await broker.close()
