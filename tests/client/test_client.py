"""The Python client: validation at enqueue (nothing stored on bad input), the sync twin,
idempotency, batching of concurrent enqueues, and the operator calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor.brokers.base import FailItem
from conveyor.client import MAX_PAYLOAD_BYTES, AsyncConveyor, Conveyor, JobRequest
from conveyor.errors import (
    BrokerUnavailable,
    IdempotencyConflict,
    InvalidState,
    JobNotFound,
    PayloadTooLarge,
    UnknownJobType,
    ValidationError,
)
from conveyor.jobs import JobState
from tests.support.typed import as_dict


async def _stored(c: AsyncConveyor) -> int:
    stats = await c.stats()
    return sum(sum(per.values()) for per in stats.values())


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"type": "nope"}, UnknownJobType),
        ({"payload": {"duration_ms": "10"}}, ValidationError),  # strict: "10" is not an int
        ({"payload": {"duration_ms": -1}}, ValidationError),
        ({"payload": {"unknown": 1}}, ValidationError),
        ({"queue": "bad queue"}, ValidationError),
        ({"queue": "q" * 65}, ValidationError),
        ({"priority": 1001}, ValidationError),
        ({"priority": True}, ValidationError),
        ({"max_attempts": 0}, ValidationError),
        ({"max_attempts": 101}, ValidationError),
        ({"timeout_s": 0}, ValidationError),
        ({"timeout_s": float("nan")}, ValidationError),
        ({"delay": -1}, ValidationError),
        ({"delay": 366 * 86400}, ValidationError),
        ({"delay": 1, "run_at": datetime.now(UTC)}, ValidationError),
        ({"run_at": datetime(2030, 1, 1)}, ValidationError),  # no zone
        ({"run_at": datetime(9999, 6, 1, tzinfo=UTC)}, ValidationError),
        ({"idempotency_key": ""}, ValidationError),
        ({"idempotency_key": "k" * 257}, ValidationError),
        ({"idempotency_key": "a\nb"}, ValidationError),
    ],
)
async def test_bad_input_is_rejected_and_nothing_is_stored(
    aclient: AsyncConveyor, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    args: dict[str, Any] = {"type": "fake", "payload": {}}
    args.update(kwargs)
    with pytest.raises(error) as exc:
        await aclient.enqueue(args.pop("type"), args.pop("payload"), **args)
    assert exc.value.code in {"validation_error", "unknown_job_type"}  # type: ignore[attr-defined]
    assert await _stored(aclient) == 0


async def test_payload_too_large(aclient: AsyncConveyor) -> None:
    big = {"result": "x" * (MAX_PAYLOAD_BYTES + 1)}
    with pytest.raises(PayloadTooLarge) as exc:
        await aclient.enqueue("fake", big)
    assert exc.value.code == "payload_too_large"
    assert await _stored(aclient) == 0


async def test_payload_limit_counts_utf8_bytes_not_characters(aclient: AsyncConveyor) -> None:
    # 2 bytes per character: under the limit in characters, over it in bytes
    wide = {"result": "\u00e9" * (MAX_PAYLOAD_BYTES // 2)}
    with pytest.raises(PayloadTooLarge) as exc:
        await aclient.enqueue("fake", wide)
    assert str(MAX_PAYLOAD_BYTES) in exc.value.message
    assert await _stored(aclient) == 0


async def test_enqueue_returns_the_stored_job(aclient: AsyncConveyor) -> None:
    job = await aclient.enqueue("fake", {"duration_ms": 5}, queue="mail", priority=3)
    assert job.state == JobState.QUEUED
    assert job.max_attempts == 5  # the fake handler's policy
    assert job.payload == {"duration_ms": 5, "fail_times": 0, "permanent": False,
                           "result": None}
    stored = await aclient.get(job.id)
    assert stored.model_dump(exclude={"history"}) == job.model_dump(exclude={"history"})


async def test_delay_and_run_at_schedule_the_job(aclient: AsyncConveyor) -> None:
    later = await aclient.enqueue("fake", delay=timedelta(minutes=5))
    assert later.state == JobState.SCHEDULED
    assert later.run_at is not None
    assert later.run_at - later.created_at == timedelta(minutes=5)
    at = datetime.now(UTC) + timedelta(hours=1)
    pinned = await aclient.enqueue("fake", run_at=at)
    assert pinned.state == JobState.SCHEDULED
    assert pinned.run_at is not None
    assert abs((pinned.run_at - at).total_seconds()) < 0.002
    past = await aclient.enqueue("fake", run_at=datetime.now(UTC) - timedelta(hours=1))
    assert past.state == JobState.QUEUED


async def test_idempotency_key(aclient: AsyncConveyor) -> None:
    first, created = await aclient.enqueue_job(JobRequest("fake", {}, idempotency_key="k1"))
    again, created_again = await aclient.enqueue_job(
        JobRequest("fake", {}, idempotency_key="k1")
    )
    assert created and not created_again
    assert again.id == first.id
    with pytest.raises(IdempotencyConflict):
        await aclient.enqueue("fake", {"duration_ms": 1}, idempotency_key="k1")
    assert await _stored(aclient) == 1


async def test_concurrent_enqueues_share_round_trips_and_keep_their_own_results(
    aclient: AsyncConveyor,
) -> None:
    jobs = await asyncio.gather(
        *(aclient.enqueue("fake", {"result": i}) for i in range(300))
    )
    assert len({j.id for j in jobs}) == 300
    for i, job in enumerate(jobs):
        assert as_dict(job.payload)["result"] == i
    assert (await aclient.stats(["default"]))["default"][JobState.QUEUED] == 300


async def test_enqueue_many_is_all_or_nothing(aclient: AsyncConveyor) -> None:
    reqs = [JobRequest("fake", {}), JobRequest("fake", {"duration_ms": "x"})]
    with pytest.raises(ValidationError):
        await aclient.enqueue_many(reqs)
    assert await _stored(aclient) == 0
    results = await aclient.enqueue_many([JobRequest("fake", {}, queue=q) for q in "abab"])
    assert [r.job_id.split(":")[0] for r in results] == list("abab")
    assert all(r.created for r in results)


async def test_operator_calls(aclient: AsyncConveyor) -> None:
    job = await aclient.enqueue("fake", delay=60)
    cancelled = await aclient.cancel(job.id)
    assert cancelled.state == JobState.CANCELLED
    with pytest.raises(InvalidState):
        await aclient.cancel(job.id)
    retried = await aclient.retry(job.id)
    assert retried.state == JobState.QUEUED
    with pytest.raises(InvalidState):
        await aclient.retry(job.id)
    with pytest.raises(JobNotFound):
        await aclient.get("default:" + "0" * 32)
    with pytest.raises(ValidationError):
        await aclient.get("not-an-id")


def test_cancel_and_retry_record_their_actor_in_the_history(any_client: Conveyor) -> None:
    job = any_client.enqueue("fake", delay=60)
    any_client.cancel(job.id, actor="cli:alice")
    retried = any_client.retry(job.id, actor="cli:bob")
    cancel, retry = retried.history[-2:]
    assert (cancel.outcome, cancel.worker) == ("cancelled", "cli:alice")
    assert cancel.message is not None and "cli:alice" in cancel.message
    assert (retry.outcome, retry.worker) == ("retried", "cli:bob")
    assert any_client.cancel(any_client.enqueue("fake").id).history[-1].worker == "manual"


def test_the_old_dlq_calls_still_work_and_say_what_replaces_them(any_client: Conveyor) -> None:
    broker = any_client.aio.broker
    for _ in range(2):
        any_client.enqueue("fake", queue="olddlq", max_attempts=1)
    batch = any_client._call(broker.fetch("olddlq", 2, "w-old", 60_000))
    dead = [d.job_id for d in batch.deliveries]
    assert any_client._call(broker.fail(
        [FailItem(d.job_id, d.token, "boom", "boom") for d in batch.deliveries]
    )) == [JobState.DEAD, JobState.DEAD]
    with pytest.warns(DeprecationWarning, match="use redrive_dead"):
        assert any_client.dlq_redrive("olddlq", [dead[0]]) == [dead[0]]
    with pytest.warns(DeprecationWarning, match="use purge_dead"):
        assert any_client.dlq_purge("olddlq", [dead[1]]) == [dead[1]]
    assert any_client.get(dead[0]).state == JobState.QUEUED
    assert any_client.get_many([dead[1]]) == [None]


def test_sync_client(client: Conveyor) -> None:
    job = client.enqueue("fake", {"duration_ms": 1})
    assert client.get(job.id).state == JobState.QUEUED
    assert client.cancel(job.id).state == JobState.CANCELLED
    assert client.stats(["default"])["default"][JobState.CANCELLED] == 1
    with pytest.raises(UnknownJobType):
        client.enqueue("nope")
    client.pause("default")
    client.resume("default")


@pytest.fixture(params=["redis", "sqlite"])
def any_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Conveyor]:
    """The sync client over each broker (both offer the blocking enqueue path)."""
    if request.param == "redis":
        yield request.getfixturevalue("client")
        return
    with Conveyor.from_url(f"sqlite:///{tmp_path / 'cv.db'}") as c:
        yield c


def test_sync_client_enqueues_on_its_broker_s_blocking_path(any_client: Conveyor) -> None:
    c = any_client
    c.connect()
    assert c._fast is not None  # the broker's sync enqueuer, not the loop thread
    job, created = c.enqueue_job(JobRequest("fake", {"duration_ms": 1}, idempotency_key="k"))
    again, created_again = c.enqueue_job(JobRequest("fake", {"duration_ms": 1},
                                                    idempotency_key="k"))
    assert (created, created_again) == (True, False)
    assert again.id == job.id and again.state == JobState.QUEUED
    with pytest.raises(IdempotencyConflict):
        c.enqueue("fake", {"duration_ms": 2}, idempotency_key="k")
    many = c.enqueue_many([JobRequest("fake", {"duration_ms": i}) for i in range(3)])
    assert [j.id if j else None for j in c.get_many([r.job_id for r in many])] == \
        [r.job_id for r in many]
    assert not c.is_paused("default")
    c.pause("default")
    assert c.is_paused("default") and c.paused_queues(["default", "other"]) == {"default"}
    c.resume("default")
    assert c.queue_page() == (["default"], None)
    assert c.stats(["default"])["default"][JobState.QUEUED] == 4


async def test_unreachable_broker_raises_broker_unavailable() -> None:
    c = AsyncConveyor.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(BrokerUnavailable) as exc:
        await c.connect()
    assert exc.value.code == "broker_unavailable"
    with pytest.raises(BrokerUnavailable):
        await c.enqueue("fake", {})
    await c.close()
