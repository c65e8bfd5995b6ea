"""The redrive tool (and purge) through the client, on every backend: each selector, the dry
run, the rate limit (measured), the move into another queue, limits and validation."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.client import AsyncConveyor
from conveyor.dlq import tool
from conveyor.dlq.pacing import TokenBucket
from conveyor.errors import JobNotFound, ValidationError
from conveyor.ids import split_job_id
from conveyor.jobs import JobState
from conveyor.timeutil import ms_to_datetime
from tests.dlq.dlq_helpers import Q, died_ms, kill, states, wait_broker_time

Q2 = "dq-two"


def _at(ms: int) -> datetime:
    when = ms_to_datetime(ms)
    assert when is not None
    return when


async def test_by_ids_reports_the_ones_not_dead(client: AsyncConveyor) -> None:
    a, b = await kill(client, 2)
    other = (await kill(client, queue=Q2))[0]
    live = (await client.enqueue("t", queue=Q)).id
    res = await client.redrive_dead([a, other, live, a], actor="cli:bob")
    assert (res.count, res.ids, res.skipped) == (2, [a, other], [live])
    assert await states(client, [a, b, other]) == [JobState.QUEUED, JobState.DEAD,
                                                   JobState.QUEUED]
    assert (await client.get(a)).history[-1].worker == "cli:bob"


async def test_by_queue(client: AsyncConveyor) -> None:
    mine = await kill(client, 3)
    theirs = await kill(client, 2, queue=Q2)
    res = await client.redrive_dead(queue=Q)
    assert sorted(res.ids) == sorted(mine) and res.count == 3
    assert await states(client, theirs) == [JobState.DEAD] * 2


async def test_by_type_and_error_code_across_queues(client: AsyncConveyor) -> None:
    a_x = await kill(client, 2, type="a", code="x") + await kill(client, type="a", code="x",
                                                                 queue=Q2)
    a_y = await kill(client, type="a", code="y")
    b_x = await kill(client, 2, type="b", code="x", queue=Q2)
    res = await client.redrive_dead(type="a", error_code="x")
    assert sorted(res.ids) == sorted(a_x)
    assert await states(client, a_y + b_x) == [JobState.DEAD] * 3
    res = await client.redrive_dead(error_code="x")
    assert sorted(res.ids) == sorted(b_x)


async def test_by_death_time(client: AsyncConveyor) -> None:
    (early,) = await kill(client)
    await wait_broker_time(client.broker, await died_ms(client, early) + 2)
    (mid,) = await kill(client)
    t_mid = await died_ms(client, mid)
    await wait_broker_time(client.broker, t_mid + 2)
    (late,) = await kill(client)

    before = await client.redrive_dead(died_before=_at(t_mid), dry_run=True)
    assert before.ids == [early]
    after = await client.redrive_dead(died_after=_at(t_mid), dry_run=True)
    assert after.ids == [mid, late]
    window = await client.redrive_dead(died_after=_at(t_mid), died_before=_at(t_mid + 1))
    assert window.ids == [mid]
    assert await states(client, [early, mid, late]) == [JobState.DEAD, JobState.QUEUED,
                                                        JobState.DEAD]


async def test_dry_run_changes_nothing(client: AsyncConveyor) -> None:
    ids = await kill(client, 4, type="a") + await kill(client, type="b", queue=Q2)
    snapshot = [await client.get(i) for i in ids]
    stats = await client.stats()
    res = await client.redrive_dead(type="a", dry_run=True, rate=1, target_queue="elsewhere")
    assert res.dry_run and res.count == 4 and sorted(res.ids) == sorted(ids[:4])
    assert res.moved_to == {}
    by_ids = await client.redrive_dead(ids, dry_run=True)
    assert by_ids.count == 5 and by_ids.skipped == []
    purge = await client.purge_dead(queue=Q2, dry_run=True)
    assert purge.ids == ids[4:]
    assert [await client.get(i) for i in ids] == snapshot
    assert await client.stats() == stats
    assert "elsewhere" not in await client.broker.queues()


async def test_rate_limits_the_moves(client: AsyncConveyor) -> None:
    n, rate = 30, 50.0
    ids = await kill(client, n)
    burst = TokenBucket(rate).burst
    started = time.monotonic()
    res = await client.redrive_dead(queue=Q, rate=rate)
    elapsed = time.monotonic() - started
    assert res.count == n and await states(client, ids) == [JobState.QUEUED] * n
    assert elapsed >= (n - burst) / rate, f"{n} jobs at {rate}/s took only {elapsed:.3f}s"


async def test_a_paced_run_stops_at_its_time_bound(client: AsyncConveyor) -> None:
    # one job a second, at most 0.3 s: the first batch goes at once, the next would wait 1 s
    ids = await kill(client, 3)
    res = await client.redrive_dead(ids, rate=1, max_duration_s=0.3)
    assert (res.count, res.done, res.skipped) == (1, False, [])
    again = await client.redrive_dead(queue=Q, rate=1, max_duration_s=0.3)
    assert (again.count, again.done) == (1, False)
    assert sorted(await states(client, ids)).count(JobState.QUEUED) == 2
    unbounded = await client.redrive_dead(queue=Q, limit=10)
    assert (unbounded.count, unbounded.done) == (1, True)


async def test_into_another_queue(client: AsyncConveyor) -> None:
    ids = await kill(client, 3, type="a")
    (keep,) = await kill(client, type="b")
    res = await client.redrive_dead(type="a", target_queue=Q2, actor="api")
    assert sorted(res.ids) == sorted(ids) and set(res.moved_to) == set(ids)
    for old, new in res.moved_to.items():
        assert split_job_id(new)[0] == Q2
        with pytest.raises(JobNotFound):
            await client.get(old)
        job = await client.get(new)
        assert job.state == JobState.QUEUED and job.type == "a"
        assert job.history[-1].worker == "api" and old in (job.history[-1].message or "")
    assert (await client.get(keep)).state == JobState.DEAD
    # into its own queue: an ordinary redrive in place
    res = await client.redrive_dead([keep], target_queue=Q)
    assert res.ids == [keep] and res.moved_to == {}


async def test_limit_and_paging(client: AsyncConveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tool, "PAGE", 3)  # many pages from few jobs
    ids = await kill(client, 8, type="a") + await kill(client, 3, type="b")
    res = await client.redrive_dead(queue=Q, type="a", limit=5)
    assert res.count == 5 and res.ids == sorted(ids[:8])[:5]
    res = await client.redrive_dead(queue=Q, type="a")
    assert res.ids == sorted(ids[:8])[5:]
    res = await client.purge_dead(type="b")
    assert sorted(res.ids) == sorted(ids[8:])
    assert (await client.stats([Q]))[Q][JobState.DEAD] == 0


async def test_purge_by_ids_and_selectors(client: AsyncConveyor) -> None:
    a = await kill(client, 2, type="a", code="x")
    b = await kill(client, 2, type="b", code="y")
    live = (await client.enqueue("t", queue=Q)).id
    res = await client.purge_dead([a[0], live])
    assert (res.ids, res.skipped) == ([a[0]], [live])
    res = await client.purge_dead(error_code="y")
    assert sorted(res.ids) == sorted(b)
    assert await states(client, [a[1]]) == [JobState.DEAD]


async def test_bad_requests_change_nothing(client: AsyncConveyor) -> None:
    (dead,) = await kill(client)
    naive = datetime(2030, 1, 1)
    now = datetime.now(UTC)
    bad: list[dict[str, object]] = [
        {},  # nothing selected: not the whole DLQ of every queue
        {"ids": [dead], "type": "t"},
        {"ids": ["not-an-id"]},
        {"ids": [dead], "queue": Q2},
        {"queue": "bad queue"},
        {"type": "bad type!"},
        {"error_code": ""},
        {"died_before": naive},
        {"died_after": now, "died_before": now - timedelta(seconds=1)},
        {"queue": Q, "rate": 0},
        {"queue": Q, "rate": float("inf")},
        {"queue": Q, "target_queue": "no such/queue"},
        {"queue": Q, "actor": ""},
        {"queue": Q, "limit": 0},
        {"queue": Q, "rate": 1, "max_duration_s": 0},
        {"queue": Q, "rate": 1, "max_duration_s": float("nan")},
    ]
    for kw in bad:
        with pytest.raises(ValidationError):
            await client.redrive_dead(**kw)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await client.purge_dead()
    assert await states(client, [dead]) == [JobState.DEAD]
