"""list_jobs: newest first across queues, stable cursor pages, filters by state and type."""

from __future__ import annotations

import pytest

from conveyor.brokers.base import Broker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.errors import ValidationError
from conveyor.jobs import JobState
from tests.brokers.conformance import assert_audit_ok


async def _enqueue(client: AsyncConveyor, n: int, queue: str, type: str = "t") -> list[str]:
    ids = []
    for _ in range(n):  # one by one: ids are time-ordered, so creation order is id order
        job, _ = await client.enqueue_job(JobRequest(type, {}, queue=queue))
        ids.append(job.id)
    return ids


async def _all_pages(broker: Broker, **kw: object) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        page = await broker.list_jobs(cursor=cursor, **kw)  # type: ignore[arg-type]
        seen += [j.id for j in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


async def test_newest_first_across_queues_with_stable_pages(
    broker: Broker, raw_client: AsyncConveyor
) -> None:
    ids = await _enqueue(raw_client, 7, "la") + await _enqueue(raw_client, 6, "lb")
    ids += await _enqueue(raw_client, 5, "la")
    expected = sorted(ids, key=lambda i: i.split(":")[1], reverse=True)
    assert await _all_pages(broker, limit=4) == expected
    assert await _all_pages(broker, queue="lb", limit=4) == [i for i in expected if i[:2] == "lb"]
    for q in ("la", "lb"):
        await assert_audit_ok(broker, q)


async def test_filters_by_state_and_type(broker: Broker, raw_client: AsyncConveyor) -> None:
    a = await _enqueue(raw_client, 4, "lf", type="a")
    b = await _enqueue(raw_client, 3, "lf", type="b")
    await broker.cancel(a[1])
    await broker.cancel(b[0])
    got = await _all_pages(broker, queue="lf", type="a", limit=2)
    assert got == list(reversed(a))
    got = await _all_pages(broker, queue="lf", state=JobState.CANCELLED, limit=1)
    assert got == [b[0], a[1]]
    got = await _all_pages(broker, queue="lf", state=JobState.QUEUED, type="b")
    assert got == [b[2], b[1]]
    await assert_audit_ok(broker, "lf")


async def test_bad_cursor_and_limit_are_rejected(broker: Broker) -> None:
    with pytest.raises(ValidationError):
        await broker.list_jobs(cursor="not-a-cursor")
    with pytest.raises(ValidationError):
        await broker.list_jobs(limit=0)
