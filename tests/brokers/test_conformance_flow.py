"""Flow control (issue 16): limits enforced at fetch, permits given back exactly once, token
buckets on the broker clock, weighted fairness between keys, RateLimited holds.

Every test ends with the fixture's audit, which also checks the flow-control counters
against the RUNNING jobs holding permits (permits never leaked).
"""

from __future__ import annotations

from collections import Counter

import pytest

from conveyor.brokers.base import AckItem, Broker, FailItem, LeaseRef
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.errors import ValidationError
from conveyor.flow import QueueLimits, Rate, parse_limits, parse_rate
from conveyor.jobs import Delivery, JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    TYPE,
    Q,
    assert_audit_ok,
    enqueue,
    wait_broker_time,
)


async def fetch(broker: Broker, n: int = 100, worker: str = "w1",
                lease_ms: int = LONG_LEASE_MS) -> list[Delivery]:
    return (await broker.fetch(Q, n, worker, lease_ms)).deliveries


async def keys_of(broker: Broker, ds: list[Delivery]) -> list[str | None]:
    return [(await broker.get(d.job_id)).limit_key for d in ds]


async def running_per_key(broker: Broker) -> Counter[str | None]:
    page = await broker.list_jobs(queue=Q, state=JobState.RUNNING, limit=1000)
    return Counter(j.limit_key for j in page.items)


async def test_limit_key_is_stored_and_checked(broker: Broker) -> None:
    job = await enqueue(broker, limit_key="acme")
    assert job.limit_key == "acme"
    assert (await broker.get(job.id)).limit_key == "acme"
    assert (await broker.get((await enqueue(broker)).id)).limit_key is None
    for bad in ("", "x" * 129, "a\nb"):
        with pytest.raises(ValidationError):
            await enqueue(broker, limit_key=bad)
    assert (await broker.stats([Q]))[Q]["queued"] == 2


async def test_limits_set_get_delete(broker: Broker) -> None:
    assert await broker.get_limits(Q) is None
    limits = QueueLimits(concurrency=3, rate=Rate(count=100, per_s=1, burst=10),
                         key_concurrency=2, key_rate=parse_rate("5/s"),
                         key_weights={"acme": 4})
    assert await broker.set_limits(Q, limits) == limits
    assert await broker.get_limits(Q) == limits
    assert await broker.delete_limits(Q) is True
    assert await broker.get_limits(Q) is None
    assert await broker.delete_limits(Q) is False
    with pytest.raises(ValidationError):
        await broker.set_limits("bad name!", limits)


@pytest.mark.parametrize("bad", [
    {"concurrency": 0}, {"concurrency": -1}, {"rate": {"count": 5, "per_s": 0}},
    {"rate": {"count": 0, "per_s": 1}}, {"key_rate": {"count": 1, "per_s": 1, "burst": 0}},
    {"key_concurrency": 1.5}, {"key_weights": {"": 2}}, {"key_weights": {"a": 0}},
    {"surprise": 1},
])
def test_bad_limits_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse_limits(bad)


async def test_queue_concurrency_through_ack_release_reap_and_stale_ack(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(concurrency=2))
    jobs = [await enqueue(broker, max_attempts=5) for _ in range(6)]
    first = await fetch(broker)
    assert len(first) == 2 and [d.job_id for d in first] == [j.id for j in jobs[:2]]
    assert await fetch(broker) == []
    await assert_audit_ok(broker)
    # ack gives one permit back
    assert await broker.ack([AckItem(first[0].job_id, first[0].token)]) == [True]
    second = await fetch(broker)
    assert len(second) == 1
    # release gives it back and the job keeps its place; no attempt charged
    assert await broker.release([LeaseRef(second[0].job_id, second[0].token)]) == [True]
    again = await fetch(broker)
    assert [d.job_id for d in again] == [second[0].job_id]
    assert again[0].attempts == 1
    # reap gives the permit back once; the stale holder's ack changes nothing
    await broker.release([LeaseRef(again[0].job_id, again[0].token)])
    short = await broker.fetch(Q, 1, "w-short", 30)
    (old,) = short.deliveries
    await wait_broker_time(broker, short.now_ms + 31)
    assert (await broker.reap_expired(Q)).requeued == 1
    await assert_audit_ok(broker)
    new = await fetch(broker, worker="w2")
    assert [d.job_id for d in new] == [old.job_id]
    assert await broker.ack([AckItem(old.job_id, old.token)]) == [False]
    assert await broker.release([LeaseRef(old.job_id, old.token)]) == [False]
    assert len(await fetch(broker)) == 0  # still 2 running: first[1] and new
    assert (await broker.stats([Q]))[Q]["running"] == 2
    await assert_audit_ok(broker)
    # fail (retry now, and dead) gives permits back too
    assert await broker.fail([FailItem(new[0].job_id, new[0].token, "e", "m",
                                       retry_delay_ms=0)]) == [JobState.QUEUED]
    assert await broker.fail([FailItem(first[1].job_id, first[1].token, "e", "m")]) == [
        JobState.DEAD]
    assert len(await fetch(broker)) == 2
    await assert_audit_ok(broker)


async def test_cancelling_a_running_job_gives_its_permit_back(broker: Broker) -> None:
    """By its holder (cancel_running) and by reaping a job asked to stop."""
    await broker.set_limits(Q, QueueLimits(concurrency=1))
    jobs = [await enqueue(broker, max_attempts=5) for _ in range(3)]
    (first,) = await fetch(broker)
    await broker.cancel(first.job_id, actor="api")
    assert await broker.cancel_running([LeaseRef(first.job_id, first.token)]) == [True]
    await assert_audit_ok(broker)
    short = await broker.fetch(Q, 1, "w-short", 30)
    (second,) = short.deliveries
    assert second.job_id == jobs[1].id
    await broker.cancel(second.job_id, actor="api")
    await wait_broker_time(broker, short.now_ms + 31)
    await broker.reap_expired(Q)
    assert (await broker.get(second.job_id)).state == JobState.CANCELLED
    await assert_audit_ok(broker)
    assert [d.job_id for d in await fetch(broker)] == [jobs[2].id]  # the permit is free


async def test_jobs_enqueued_into_a_limited_queue_wait_in_their_keys(broker: Broker) -> None:
    """Before any fetch, a limited queue's new jobs are counted as limited and listed per key
    (Redis puts them into their key lanes at enqueue); a job of a higher priority arriving
    for a key with work goes first, and a key waiting on a permit stays held."""
    await broker.set_limits(Q, QueueLimits(key_concurrency=1))
    a1 = await enqueue(broker, limit_key="a")
    b1 = await enqueue(broker, limit_key="b")
    n1 = await enqueue(broker)
    assert await broker.limited_counts([Q]) == {Q: 3}
    assert (await broker.stats([Q]))[Q]["queued"] == 3
    assert {k.key: k.backlog for k in await broker.limit_keys(Q)} == {"a": 1, "b": 1}
    first = await fetch(broker, 2)  # equal passes: key names in byte order, '' first
    assert [d.job_id for d in first] == [n1.id, a1.id]
    a2 = await enqueue(broker, limit_key="a")  # a is at its key_concurrency
    c1 = await enqueue(broker, limit_key="c")
    c_urgent = await enqueue(broker, limit_key="c", priority=5)  # c now goes before b
    assert await broker.limited_counts([Q]) == {Q: 4}
    got = await fetch(broker, 1)
    assert [d.job_id for d in got] == [c_urgent.id]
    got += await fetch(broker)
    assert [d.job_id for d in got] == [c_urgent.id, b1.id]
    assert await fetch(broker) == []  # a and c wait on their permits
    await broker.ack([AckItem(d.job_id, d.token) for d in first + got])
    assert {d.job_id for d in await fetch(broker)} == {a2.id, c1.id}
    await assert_audit_ok(broker)


async def test_keys_whose_work_ran_out_do_not_hide_the_work_behind_them(broker: Broker) -> None:
    """150 keys each lease their one urgent job; a job of a lower priority arriving then is
    fetched by the next fetch of one (Redis ranks a served key by the job it just took, not
    by a look at its lane, and finds out at its next turn that the lane is empty: such turns
    are not limited by the fetch's bound on keys looked at)."""
    await broker.set_limits(Q, QueueLimits(key_concurrency=5))
    await AsyncConveyor(broker, validate_types=False).enqueue_many(
        JobRequest(TYPE, None, Q, priority=5, limit_key=f"k{i:03}") for i in range(150))
    urgent = await fetch(broker, 150)
    assert len(urgent) == 150
    late = await enqueue(broker, limit_key="late")
    assert [k.key for k in await broker.limit_keys(Q)] == ["late"]
    assert [d.job_id for d in await fetch(broker, 1)] == [late.id]
    await broker.ack([AckItem(d.job_id, d.token) for d in urgent])
    assert await fetch(broker) == []
    await assert_audit_ok(broker)


async def test_a_key_served_several_times_in_a_row_loses_nothing(broker: Broker) -> None:
    """A key that wins several turns in a row (Redis pops its jobs at once) is still cut
    by its key_concurrency and by a job of a lower priority behind, FIFO within a band."""
    await broker.set_limits(Q, QueueLimits(key_concurrency=3))
    a = [await enqueue(broker, limit_key="a") for _ in range(6)]
    first = await fetch(broker, 10)
    assert [d.job_id for d in first] == [j.id for j in a[:3]]
    await broker.ack([AckItem(first[0].job_id, first[0].token)])
    assert [d.job_id for d in await fetch(broker, 10)] == [a[3].id]
    assert (await broker.stats([Q]))[Q]["queued"] == 2
    await broker.delete_limits(Q)
    await broker.set_limits(Q, QueueLimits(key_weights={"c": 4}))
    c_urgent = await enqueue(broker, limit_key="c", priority=5)
    c_low = [await enqueue(broker, limit_key="c") for _ in range(2)]
    d = await enqueue(broker, limit_key="d")
    got = await fetch(broker, 4)
    # c's urgent job first (priority), then d (at the queue's clock) before c (a quarter
    # turn past it), then c twice: a (4 turns past) last
    assert [x.job_id for x in got] == [c_urgent.id, d.id, c_low[0].id, c_low[1].id]
    rest = await fetch(broker, 10)
    assert [x.job_id for x in rest] == [j.id for j in a[4:]]
    await assert_audit_ok(broker)


async def test_deleting_limits_leaves_no_job_counted_as_limited(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(key_concurrency=1))
    jobs = [await enqueue(broker, limit_key=key) for key in ("a", "a", "b")]
    assert await broker.limited_counts([Q]) == {Q: 3}
    assert await broker.delete_limits(Q) is True
    assert await broker.limited_counts([Q]) == {Q: 0}
    assert (await broker.stats([Q]))[Q]["queued"] == 3
    assert {d.job_id for d in await fetch(broker)} == {j.id for j in jobs}
    await assert_audit_ok(broker)


async def test_key_concurrency_and_no_key_group(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(key_concurrency=2))
    for key in ["a"] * 5 + ["b"] * 5 + [None] * 3:
        await enqueue(broker, limit_key=key)
    got = await fetch(broker)
    assert Counter(await keys_of(broker, got)) == {"a": 2, "b": 2, None: 3}
    assert await fetch(broker) == []
    assert (await broker.stats([Q]))[Q]["queued"] == 6
    assert await broker.limited_counts([Q]) == {Q: 6}
    keys = {k.key: k for k in await broker.limit_keys(Q)}
    assert (keys["a"].backlog, keys["a"].running) == (3, 2)
    a_job = next(d for d, k in zip(got, await keys_of(broker, got), strict=True) if k == "a")
    await broker.ack([AckItem(a_job.job_id, a_job.token)])
    more = await fetch(broker)
    assert await keys_of(broker, more) == ["a"]
    per_key = await running_per_key(broker)
    assert per_key["a"] == 2 and per_key["b"] == 2
    await assert_audit_ok(broker)


async def test_held_jobs_are_not_charged_an_attempt(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(concurrency=1))
    a, b = await enqueue(broker, max_attempts=1), await enqueue(broker, max_attempts=1)
    (d,) = await fetch(broker)
    for _ in range(3):
        assert await fetch(broker) == []
    held = await broker.get(b.id)
    assert held.state == JobState.QUEUED and held.attempts == 0
    await broker.ack([AckItem(d.job_id, d.token)])
    (d2,) = await fetch(broker)
    assert d2.job_id == b.id and d2.attempts == 1
    assert a.id == d.job_id


async def test_rate_bucket_on_the_broker_clock(broker: Broker) -> None:
    # 2 starts per minute, burst 2: two now, then the next token in 30 s
    await broker.set_limits(Q, QueueLimits(rate=Rate(count=2, per_s=60, burst=2)))
    for _ in range(4):
        await enqueue(broker)
    batch = await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)
    assert len(batch.deliveries) == 2
    later = await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)
    assert later.deliveries == []
    assert later.next_due_ms is not None
    assert later.now_ms < later.next_due_ms <= later.now_ms + 30_000
    # acks do not refill a rate
    await broker.ack([AckItem(d.job_id, d.token) for d in batch.deliveries])
    assert await fetch(broker) == []


async def test_key_rate_starts_per_window(broker: Broker) -> None:
    """Starts per key in any window of W ms stay within count * W / per + burst."""
    rate = Rate(count=1, per_s=0.1, burst=2)
    await broker.set_limits(Q, QueueLimits(key_rate=rate))
    for key in ["a"] * 8 + ["b"] * 8:
        await enqueue(broker, limit_key=key)
    starts: dict[str, list[int]] = {"a": [], "b": []}
    end = (await broker.now_ms()) + 600
    while True:
        batch = await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)
        for d in batch.deliveries:
            limit_key = (await broker.get(d.job_id)).limit_key
            assert limit_key is not None
            starts[limit_key].append(batch.now_ms)
            await broker.ack([AckItem(d.job_id, d.token)])
        if batch.now_ms >= end:
            break
        if not batch.deliveries:
            assert batch.next_due_ms is not None  # the worker knows when to look again
            await wait_broker_time(broker, min(batch.next_due_ms, end))
    for key, times in starts.items():
        assert len(times) >= 3, (key, times)  # the burst, then the refill
        for i, t0 in enumerate(times):
            for w in (100, 250, 600):
                n = sum(1 for t in times[i:] if t < t0 + w)
                assert n <= w / rate.per_ms * rate.count + rate.burst, (key, times, w)


async def test_weighted_round_robin_between_keys(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(key_weights={"a": 3}))
    for key in ["a"] * 20 + ["b"] * 20:
        await enqueue(broker, limit_key=key)
    order: list[str | None] = []
    for _ in range(16):
        (d,) = (await broker.fetch(Q, 1, "w1", LONG_LEASE_MS)).deliveries
        order += await keys_of(broker, [d])
        await broker.ack([AckItem(d.job_id, d.token)])
    counts = Counter(order)
    assert counts["a"] == 12 and counts["b"] == 4, order
    await assert_audit_ok(broker)


async def test_a_flood_does_not_starve_quiet_keys(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(key_concurrency=50))
    flood = [await enqueue(broker, limit_key="flood") for _ in range(30)]
    quiet = [await enqueue(broker, limit_key=f"q{i}") for i in range(5)]
    first = await fetch(broker, 6)
    got = await keys_of(broker, first)
    assert set(got) == {"flood", "q0", "q1", "q2", "q3", "q4"}
    # FIFO within a key
    assert next(d.job_id for d, k in zip(first, got, strict=True) if k == "flood") == flood[0].id
    assert {d.job_id for d in first} >= {j.id for j in quiet}


async def test_priority_comes_before_fairness(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(key_concurrency=10))
    for _ in range(3):
        await enqueue(broker, limit_key="a")
    urgent = await enqueue(broker, limit_key="b", priority=5)
    (d,) = (await broker.fetch(Q, 1, "w1", LONG_LEASE_MS)).deliveries
    assert d.job_id == urgent.id


async def test_rate_limited_release_holds_the_key(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(key_concurrency=5))
    a1, a2 = await enqueue(broker, limit_key="a"), await enqueue(broker, limit_key="a")
    b1 = await enqueue(broker, limit_key="b")
    got = {d.job_id: d for d in await fetch(broker, 1)}
    (d,) = got.values()
    assert d.job_id == a1.id
    assert await broker.release_held([LeaseRef(d.job_id, d.token)], 60_000) == [True]
    job = await broker.get(a1.id)
    assert job.state == JobState.QUEUED and job.attempts == 0
    assert job.history[-1].error_code == "rate_limited"
    rest = await fetch(broker)
    assert [x.job_id for x in rest] == [b1.id]  # key a is held, a2 too
    keys = {k.key: k for k in await broker.limit_keys(Q)}
    now = await broker.now_ms()
    held = keys["a"].held_until_ms
    assert held is not None and now < held <= now + 60_000
    assert (await broker.get(a2.id)).attempts == 0
    await assert_audit_ok(broker)


async def test_rate_limited_without_a_key_holds_the_queue(broker: Broker) -> None:
    j1, j2 = await enqueue(broker), await enqueue(broker)
    (d,) = await fetch(broker, 1)
    assert await broker.release_held([LeaseRef(d.job_id, d.token)], 60_000) == [True]
    late = await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)
    assert late.deliveries == []
    assert late.next_due_ms is not None and late.next_due_ms > late.now_ms
    assert {(await broker.get(j.id)).attempts for j in (j1, j2)} == {0}


async def test_cancel_and_delete_limits_keep_counters_true(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(key_concurrency=1))
    jobs = [await enqueue(broker, limit_key="a") for _ in range(3)]
    (d,) = await fetch(broker)
    await broker.cancel(jobs[1].id)
    await assert_audit_ok(broker)
    await broker.delete_limits(Q)
    rest = await fetch(broker)  # no limit now: the last one goes too
    assert [x.job_id for x in rest] == [jobs[2].id]
    await broker.ack([AckItem(x.job_id, x.token) for x in [d, *rest]])
    await assert_audit_ok(broker)
    assert await broker.limited_counts([Q]) == {Q: 0}


async def test_held_back_counts_per_reason(broker: Broker) -> None:
    await broker.set_limits(Q, QueueLimits(key_concurrency=1))
    for _ in range(2):
        await enqueue(broker, limit_key="a")
    assert len(await fetch(broker)) == 1
    held = (await broker.held_counts([Q]))[Q]
    assert held.get("key_concurrency", 0) >= 1 and "concurrency" not in held
    await broker.set_limits(Q, QueueLimits(concurrency=1, key_concurrency=1))
    await enqueue(broker, limit_key="b")
    assert await fetch(broker) == []
    assert (await broker.held_counts([Q]))[Q].get("concurrency", 0) >= 1
    assert await broker.held_counts(["other"]) == {"other": {}}


async def test_both_brokers_serve_keys_in_the_same_order(broker: Broker) -> None:
    """Weighted fair queueing, exactly: serving a key adds 1/weight to its pass, the lowest
    pass goes next, ties by key name, FIFO within a key."""
    await broker.set_limits(Q, QueueLimits(key_weights={"a": 2}))
    for key in ["c", "b", "a"] * 3:
        await enqueue(broker, limit_key=key)
    order: list[str | None] = []
    while ds := (await broker.fetch(Q, 1, "w1", LONG_LEASE_MS)).deliveries:
        order += await keys_of(broker, ds)
        await broker.ack([AckItem(d.job_id, d.token) for d in ds])
    assert "".join(k or "-" for k in order) == "abcaabcbc"


def _fair_order(jobs: list[tuple[str, int]], weights: dict[str, int], batch: int) -> list[str]:
    """The reference: stride scheduling over lanes of (key, priority) jobs enqueued in this
    order, all present at the first fetch: the lane head's priority first, then the lowest
    pass, ties by key name; serving a key adds 1/weight to its pass."""
    lanes: dict[str, list[tuple[int, int]]] = {}
    for seq, (key, prio) in enumerate(jobs):
        lanes.setdefault(key, []).append((-prio, seq))
    for lane in lanes.values():
        lane.sort()
    passed = dict.fromkeys(lanes, 0.0)
    order: list[str] = []
    while any(lanes.values()):
        for _ in range(batch):
            live = [k for k, lane in lanes.items() if lane]
            if not live:
                break
            key = min(live, key=lambda k: (lanes[k][0][0], passed[k], k.encode()))
            lanes[key].pop(0)
            passed[key] += 1 / weights.get(key, 1)
            order.append(key)
    return order


async def test_batched_fetches_keep_the_exact_fair_order(broker: Broker) -> None:
    """Many keys, weights, mixed priorities, fetches of several jobs: each batch is served in
    the exact order of the reference (a limited fetch serves a batch from ready's first
    entries without re-reading it at each step; this pins that it changes nothing)."""
    weights = {"a": 3, "c": 2, "k7": 5}
    keys = ["a", "b", "c", "k10", "k7", "k1", "B", "kk", "k"]
    jobs = [(keys[(i * 7) % len(keys)], 1 if i % 5 == 0 else 0) for i in range(90)]
    await broker.set_limits(Q, QueueLimits(key_weights=weights))
    for key, prio in jobs:
        await enqueue(broker, limit_key=key, priority=prio)
    order: list[str | None] = []
    while ds := (await broker.fetch(Q, 4, "w1", LONG_LEASE_MS)).deliveries:
        order += await keys_of(broker, ds)
        await broker.ack([AckItem(d.job_id, d.token) for d in ds])
    assert order == _fair_order(jobs, weights, 4)
    await assert_audit_ok(broker)
