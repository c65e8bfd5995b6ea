"""What goes into a broker comes back out unchanged: payloads, results, error messages and
tracebacks (with quotes, newlines and non-ASCII text), idempotency keys of any printable text;
and a fully purged queue leaves no job data behind.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from conveyor.brokers.base import AckItem, Broker, FailItem
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import RESULT_PREVIEW_CHARS, JobState
from tests.brokers.conformance import (
    LONG_LEASE_MS,
    BrokerFactory,
    Q,
    assert_audit_ok,
    enqueue,
    fetch_one,
    redis_of,
)

TEXT = 'quote " backslash \\ slash / newline \n tab \t ü 漢字 😀'
AWKWARD: dict[str, Any] = {
    "text": TEXT,
    "big": 2**62 + 1,
    "float": 0.1,
    "nested": [{"a": None, "b": [True, False]}, []],
    "empty": "",
}


async def test_payload_and_result_round_trip(broker: Broker) -> None:
    job = await enqueue(broker, AWKWARD)
    d = await fetch_one(broker)
    assert json.loads(d.payload_json) == AWKWARD
    assert (await broker.get(job.id)).payload == AWKWARD
    result = json.dumps({"echo": AWKWARD}, ensure_ascii=False)
    assert await broker.ack([AckItem(job.id, d.token, result)]) == [True]
    assert (await broker.get(job.id)).result == {"echo": AWKWARD}
    await assert_audit_ok(broker)


async def test_error_text_round_trips_into_history(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=3)
    d = await fetch_one(broker, worker='host-ü:"1"')
    message = TEXT
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: ü\n'
    item = FailItem(job.id, d.token, "handler_error", message, traceback, retry_delay_ms=0)
    assert await broker.fail([item]) == [JobState.QUEUED]
    got = await broker.get(job.id)
    (entry,) = got.history
    assert (entry.worker, entry.message, entry.traceback) == ('host-ü:"1"', message, traceback)
    assert got.last_error is not None and got.last_error.message == message
    await assert_audit_ok(broker)


@pytest.mark.parametrize("key", ["k", "a:{b} c/ü", "x" * 256, "*?[]"])
async def test_any_printable_idempotency_key(broker: Broker, key: str) -> None:
    client = AsyncConveyor(broker, validate_types=False)
    first, created = await client.enqueue_job(JobRequest("t", 1, Q, idempotency_key=key))
    again, created_again = await client.enqueue_job(JobRequest("t", 1, Q, idempotency_key=key))
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert again.idempotency_key == key
    await assert_audit_ok(broker)


async def test_fetch_of_zero_jobs_changes_nothing(broker: Broker) -> None:
    job = await enqueue(broker)
    before = await broker.get(job.id)
    batch = await broker.fetch(Q, 0, "w", LONG_LEASE_MS)
    assert batch.deliveries == []
    assert await broker.get(job.id) == before
    await assert_audit_ok(broker)


@pytest.mark.backend("redis")
async def test_purged_jobs_leave_no_keys_behind(make_broker: BrokerFactory) -> None:
    broker = await make_broker(retention_s=0.0, dlq_retention_s=0.0)
    assert isinstance(broker, RedisBroker)
    client = AsyncConveyor(broker, validate_types=False)
    for n in range(3):
        await client.enqueue("t", n, queue=Q, idempotency_key=f"key-{n}", max_attempts=1)
    for n in range(3):
        d = await fetch_one(broker)
        if n == 0:
            assert await broker.ack([AckItem(d.job_id, d.token)]) == [True]
        else:
            assert await broker.fail([FailItem(d.job_id, d.token, "e", "m")]) == [JobState.DEAD]
    cancelled = await enqueue(broker, idempotency_key="key-c")
    await broker.cancel(cancelled.id)
    assert await broker.expire_finished(Q) == 4
    qk = broker.keys.queue(Q)
    leftovers = [
        k
        async for k in redis_of(broker).scan_iter(match=f"{broker.keys.prefix}:*")
        if k.startswith((qk.job_prefix, qk.idem_prefix))
    ]
    assert leftovers == []
    assert sum((await broker.stats([Q]))[Q].values()) == 0
    await assert_audit_ok(broker)


async def test_one_unencodable_message_does_not_sink_a_fail_batch(broker: Broker) -> None:
    """A message with a lone surrogate (a file name from `os.fsdecode`) cannot be UTF-8
    encoded; the broker makes it safe instead of refusing the whole batch of 20 outcomes."""
    odd = os.fsdecode(b"cannot open /data/caf\xe9.csv")  # 'caf\udce9.csv'
    jobs = [await enqueue(broker, i, max_attempts=3) for i in range(20)]
    leased = (await broker.fetch(Q, 20, "w1", LONG_LEASE_MS)).deliveries
    assert [d.job_id for d in leased] == [j.id for j in jobs]
    items = [
        FailItem(d.job_id, d.token, "handler_error", odd if i == 7 else f"real error {i}",
                 traceback=f"Traceback\n  {odd}\n" if i == 7 else "", retry_delay_ms=0)
        for i, d in enumerate(leased)
    ]
    assert await broker.fail(items) == [JobState.QUEUED] * 20
    for i, job in enumerate(jobs):
        got = await broker.get(job.id)
        assert got.last_error is not None
        if i != 7:
            assert got.last_error.message == f"real error {i}"
    odd_job = await broker.get(jobs[7].id)
    assert odd_job.last_error is not None
    message = odd_job.last_error.message
    assert message.startswith("cannot open /data/caf") and message.endswith(".csv")
    message.encode()  # what is stored is valid text
    (entry,) = odd_job.history
    assert entry.traceback is not None and "caf" in entry.traceback
    await assert_audit_ok(broker)


async def test_unencodable_worker_ids_and_actors_are_made_safe(broker: Broker) -> None:
    job = await enqueue(broker, max_attempts=2)
    d = await fetch_one(broker, worker=os.fsdecode(b"host-\xff"))
    assert await broker.fail([FailItem(job.id, d.token, "e", "m")]) == [JobState.DEAD]
    await broker.retry(job.id, actor="op\udc80")
    got = await broker.get(job.id)
    assert [h.worker for h in got.history] == ["host-\\udcff", "op\\udc80"]
    await assert_audit_ok(broker)


async def test_an_unencodable_result_does_not_sink_an_ack_batch(broker: Broker) -> None:
    jobs = [await enqueue(broker, i) for i in range(5)]
    leased = (await broker.fetch(Q, 5, "w", LONG_LEASE_MS)).deliveries
    results = [json.dumps({"n": i}) if i != 2 else '{"file": "caf\udce9"}' for i in range(5)]
    acks = [AckItem(d.job_id, d.token, r) for d, r in zip(leased, results, strict=True)]
    assert await broker.ack(acks) == [True] * 5
    for i, job in enumerate(jobs):
        got = await broker.get(job.id)
        assert got.state == JobState.SUCCEEDED
        if i != 2:
            assert got.result == {"n": i}
    odd = await broker.get(jobs[2].id)
    assert isinstance(odd.result, dict) and str(odd.result["file"]).startswith("caf")
    await assert_audit_ok(broker)


async def test_listings_carry_a_preview_of_a_large_result_never_the_result(
    broker: Broker,
) -> None:
    """A listing reads a short preview stored at ack time, not the whole result (which may
    be megabytes per job); `get` reads the whole of it."""
    small, big = await enqueue(broker, 1), await enqueue(broker, 2)
    big_json = json.dumps({"blob": "ü" * 100_000})
    leased = {d.job_id: d for d in (await broker.fetch(Q, 2, "w", LONG_LEASE_MS)).deliveries}
    assert await broker.ack([AckItem(small.id, leased[small.id].token, '{"n": 1}'),
                             AckItem(big.id, leased[big.id].token, big_json)]) == [True, True]
    for page in (await broker.list_jobs(queue=Q), await broker.list_jobs(),
                 await broker.list_jobs(queue=Q, state=JobState.SUCCEEDED)):
        items = {j.id: j for j in page.items}
        shown_small, shown_big = items[small.id], items[big.id]
        assert shown_small.result == {"n": 1} and not shown_small.result_truncated
        assert shown_big.result is None and shown_big.result_truncated
        assert shown_big.result_preview == big_json[:RESULT_PREVIEW_CHARS]
    whole = await broker.get(big.id)
    assert whole.result == json.loads(big_json)
    assert not whole.result_truncated and whole.result_preview is None
    await assert_audit_ok(broker)
