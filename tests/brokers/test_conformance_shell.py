"""The broker shell (brokers/shell.py) on every backend: the same bad input gets the same
answer (the same exception, ErrorCode and details) from each broker, and nothing is stored.

Before the shell, SQLite checked queue names in fetch, promote_due, reap_expired and
expire_finished and Redis did not (a bad name became a key of its own); these pin the now
equal behaviour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conveyor.brokers.base import Broker, DeathEvent
from conveyor.errors import ErrorCode, InvalidState, JobNotFound, ValidationError
from conveyor.ids import new_job_id, new_uid
from conveyor.jobs import JobSpec, JobState
from tests.brokers.conformance import LONG_LEASE_MS, Q, assert_audit_ok, enqueue, total

BAD_QUEUES = ["", "has space", "x" * 65, "{tag}", "a:b"]

#: each call given a bad queue name
QUEUE_CALLS: dict[str, Callable[[Broker, str], Awaitable[Any]]] = {
    "fetch": lambda b, q: b.fetch(q, 1, "w", LONG_LEASE_MS),
    "wait_for_work": lambda b, q: b.wait_for_work([Q, q], 0.01),
    "promote_due": lambda b, q: b.promote_due(q),
    "reap_expired": lambda b, q: b.reap_expired(q),
    "expire_finished": lambda b, q: b.expire_finished(q),
    "dlq_list": lambda b, q: b.dlq_list(q),
    "dlq_scan": lambda b, q: b.dlq_scan(q),
    "dlq_redrive": lambda b, q: b.dlq_redrive(q, None),
    "dlq_purge": lambda b, q: b.dlq_purge(q, None),
    "dlq_move": lambda b, q: b.dlq_move(Q, [], q, "t"),
    "claim_deaths": lambda b, q: b.claim_deaths(q, 10, 1000),
    "ack_deaths": lambda b, q: b.ack_deaths(q, []),
    "list_jobs": lambda b, q: b.list_jobs(queue=q),
    "pause": lambda b, q: b.pause(q),
}


@pytest.mark.parametrize("call", list(QUEUE_CALLS), ids=list(QUEUE_CALLS))
@pytest.mark.parametrize("queue", BAD_QUEUES, ids=["empty", "space", "long", "brace", "colon"])
async def test_a_bad_queue_name_is_a_validation_error_naming_the_queue(
    broker: Broker, call: str, queue: str,
) -> None:
    with pytest.raises(ValidationError) as err:
        await QUEUE_CALLS[call](broker, queue)
    assert err.value.code == ErrorCode.VALIDATION_ERROR
    assert err.value.details == {"field": "queue", "value": queue}


async def test_bad_queue_names_leave_nothing_behind(broker: Broker) -> None:
    job = await enqueue(broker)
    for queue in BAD_QUEUES:
        for call in QUEUE_CALLS.values():
            with pytest.raises(ValidationError):
                await call(broker, queue)
    assert await broker.queues() == [Q]
    assert (await broker.get(job.id)).state == JobState.QUEUED
    await assert_audit_ok(broker)


def _spec(**kw: Any) -> JobSpec:
    base = JobSpec(id=new_job_id(Q), type="t", queue=Q, payload_json="{}", max_attempts=3)
    return dataclasses.replace(base, **kw)


@pytest.mark.parametrize("change", [
    {"id": new_job_id("conf-other")},  # an id of another queue
    {"queue": "conf-other"},  # the queue disagrees with the id
    {"id": f"{Q}:{new_uid()[:31]}"},  # not a uid
    {"id": f"bad name:{new_uid()}", "queue": "bad name"},  # not a queue name
], ids=["id-of-another-queue", "queue-disagrees", "short-uid", "bad-queue-name"])
async def test_an_id_that_does_not_match_its_queue_is_refused_on_enqueue(
    broker: Broker, change: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError) as err:
        await broker.enqueue([_spec(), _spec(**change)])
    assert err.value.code == ErrorCode.VALIDATION_ERROR
    assert err.value.details[0]["loc"] == ["id"]
    assert total((await broker.stats([Q]))[Q]) == 0  # all or nothing
    assert await broker.queues() == []


#: calls given the id of a job of another queue than the one they name
FOREIGN_ID_CALLS: dict[str, Callable[[Broker, str], Awaitable[Any]]] = {
    "dlq_redrive": lambda b, j: b.dlq_redrive(Q, [j]),
    "dlq_purge": lambda b, j: b.dlq_purge(Q, [j]),
    "dlq_move": lambda b, j: b.dlq_move(Q, [j], "conf-target", "t"),
    "ack_deaths": lambda b, j: b.ack_deaths(Q, [DeathEvent(j, "t", 1)]),
}


@pytest.mark.parametrize("call", list(FOREIGN_ID_CALLS), ids=list(FOREIGN_ID_CALLS))
async def test_a_job_id_of_another_queue_is_refused(broker: Broker, call: str) -> None:
    job_id = new_job_id("conf-other")
    with pytest.raises(ValidationError) as err:
        await FOREIGN_ID_CALLS[call](broker, job_id)
    assert err.value.details == {"job_id": job_id}


@pytest.mark.parametrize("kw", [{"limit": 0}, {"limit": 1001}, {"cursor": "nope"}],
                         ids=["limit-0", "limit-1001", "cursor"])
async def test_listing_bounds_are_the_same(broker: Broker, kw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as listing:
        await broker.list_jobs(queue=Q, **kw)
    with pytest.raises(ValidationError) as dead:
        await broker.dlq_list(Q, **kw)
    assert listing.value.details == dead.value.details == kw


@pytest.mark.parametrize("kw", [{"limit": 0}, {"scan": 10_001}])
async def test_dead_scan_bounds_are_the_same(broker: Broker, kw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as err:
        await broker.dlq_scan(Q, **kw)
    assert err.value.details == {"limit": 100, "scan": 1000, **kw}


async def test_a_move_into_its_own_queue_is_refused(broker: Broker) -> None:
    with pytest.raises(ValidationError) as err:
        await broker.dlq_move(Q, [new_job_id(Q)], Q, "t")
    assert err.value.details == {"target_queue": Q}


async def test_operator_outcomes_are_the_same_errors(broker: Broker) -> None:
    unknown = new_job_id(Q)
    for call in (broker.cancel, broker.retry):
        with pytest.raises(JobNotFound) as missing:
            await call(unknown)
        assert missing.value.details == {"job_id": unknown}
    job = await enqueue(broker)
    with pytest.raises(InvalidState) as err:
        await broker.retry(job.id)
    assert err.value.code == ErrorCode.INVALID_STATE
    assert err.value.details == {"job_id": job.id, "state": "queued"}
    await broker.cancel(job.id)
    with pytest.raises(InvalidState) as again:
        await broker.cancel(job.id)
    assert again.value.details == {"job_id": job.id, "state": "cancelled"}
    await assert_audit_ok(broker)
