"""Redis flow control's per-key layout (issue 16): permits out per key in one hash (`krun`),
fairness passes in another (`kpass`, dropped a moment after a key's work ran out), buckets
and holds in `lk:<key>`; permits leased by the previous layout (`permit` '1' / 'c', counted
in `lk:<key>`'s `run`) still go back exactly once; a key left waiting on a permit by a change
of limits (`infx`) is looked at by the next give-back.
"""

from __future__ import annotations

from typing import cast

import pytest

from conveyor.brokers.base import AckItem, Broker, FailItem
from conveyor.brokers.redis import RedisBroker
from conveyor.flow import QueueLimits, parse_rate
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    Q,
    assert_audit_ok,
    enqueue,
    wait_broker_time,
)

pytestmark = pytest.mark.backend("redis")


def _job_key(broker: RedisBroker, job_id: str) -> str:
    return broker.keys.queue(Q).job_prefix + job_id.split(":", 1)[1]


async def test_key_counts_and_passes_live_in_one_hash_each(broker: Broker) -> None:
    rb = cast(RedisBroker, broker)
    qk, client = rb.keys.queue(Q), rb.client
    await broker.set_limits(Q, QueueLimits(key_concurrency=3))
    for key in ("a", "a", "b"):
        await enqueue(broker, limit_key=key)
    got = (await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)).deliveries
    assert len(got) == 3
    assert await client.hgetall(qk.key_runs) == {"a": "2", "b": "1"}
    assert set(await client.hgetall(qk.key_passes)) == {"a", "b"}
    assert await client.exists(qk.limit_key("a"), qk.limit_key("b")) == 0  # no rate, no hold
    await assert_audit_ok(broker)
    await broker.ack([AckItem(d.job_id, d.token) for d in got[:2]])
    await broker.fail([FailItem(got[2].job_id, got[2].token, "boom", "x")])
    assert await client.hgetall(qk.key_runs) == {}  # no field for a key without permits
    # the passes go once the keys have been idle for a moment (swept by a later fetch)
    now = await broker.now_ms()
    await wait_broker_time(broker, now + 1100)
    await enqueue(broker, limit_key="c")
    assert len((await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)).deliveries) == 1
    assert set(await client.hgetall(qk.key_passes)) == {"c"}
    await assert_audit_ok(broker)


async def test_a_keys_bucket_record_expires_once_idle(broker: Broker) -> None:
    rb = cast(RedisBroker, broker)
    qk, client = rb.keys.queue(Q), rb.client
    await broker.set_limits(Q, QueueLimits(key_rate=parse_rate("100/s")))
    await enqueue(broker, limit_key="a")
    batch = await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)
    (d,) = batch.deliveries
    assert await client.pttl(qk.limit_key("a")) == -1  # ranked still: no peek at its lane
    # the next fetch finds the key out of tokens (blocked until its next one, 10 ms), the
    # one after that its lane empty: the record then expires once the bucket is full again
    assert (await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)).deliveries == []
    await wait_broker_time(broker, batch.now_ms + 20)
    assert (await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)).deliveries == []
    assert 0 < await client.pttl(qk.limit_key("a")) <= 1100
    await broker.ack([AckItem(d.job_id, d.token)])
    await assert_audit_ok(broker)


@pytest.mark.parametrize("permit", ["1", "c"])
async def test_permits_of_the_previous_layout_go_back_once(broker: Broker, permit: str) -> None:
    """A job leased before `krun` carries permit '1' or 'c' and is counted in lk:<key>'s
    `run`: its ack, failure or reap gives that back, not a `krun` count."""
    rb = cast(RedisBroker, broker)
    qk, client = rb.keys.queue(Q), rb.client
    await broker.set_limits(Q, QueueLimits(concurrency=10, key_concurrency=2))
    for _ in range(3):
        await enqueue(broker, limit_key="a")
    got = (await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)).deliveries
    assert len(got) == 2
    # as the previous layout left them: the key's count in lk:a, the permits '1' / 'c'
    await client.hdel(qk.key_runs, "a")
    await client.hset(qk.limit_key("a"), "run", 2)
    for d in got:
        await client.hset(_job_key(rb, d.job_id), "permit", permit)
    await assert_audit_ok(broker)
    await broker.ack([AckItem(got[0].job_id, got[0].token)])
    await broker.fail([FailItem(got[1].job_id, got[1].token, "boom", "x")])
    assert await client.hget(qk.limit_key("a"), "run") == "0"
    assert await client.hget(qk.limits, "run") == "0"
    assert await client.hgetall(qk.key_runs) == {}
    await assert_audit_ok(broker)
    (last,) = (await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)).deliveries
    await broker.ack([AckItem(last.job_id, last.token)])
    await assert_audit_ok(broker)


async def test_a_key_left_waiting_by_a_change_of_limits_is_freed_by_a_give_back(
    broker: Broker,
) -> None:
    """`infx` (more than 1,000 keys were waiting on a permit when limits changed) makes the
    ack look at `blocked` for a key below its key_concurrency."""
    rb = cast(RedisBroker, broker)
    qk, client = rb.keys.queue(Q), rb.client
    await broker.set_limits(Q, QueueLimits(key_concurrency=1))
    await enqueue(broker, limit_key="a")
    await enqueue(broker, limit_key="a")
    (first,) = (await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)).deliveries
    assert await client.zscore(qk.blocked, "a") == float("inf")
    # as if limits.lua had raised the limit to 5 with more than 1,000 keys waiting, this one
    # among those it left for their next permit
    await client.hset(qk.limits, mapping={"kc": 5, "infx": "1"})
    await broker.ack([AckItem(first.job_id, first.token)])
    assert await client.zscore(qk.blocked, "a") != float("inf")
    assert len((await broker.fetch(Q, 10, "w1", LONG_LEASE_MS)).deliveries) == 1
    await assert_audit_ok(broker)
