"""The DLQ worker (a maintenance hook), one pass at a time, on every backend: per-type redrive
policies and their bound, poison jobs left alone, and `on_dead` hooks (sync and async, a
failing one, one cut short by a crashed worker)."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta

import pytest

from conveyor.brokers.base import Broker
from conveyor.client import AsyncConveyor
from conveyor.errors import JobNotFound
from conveyor.handlers import Registry
from conveyor.jobs import Job, JobState
from conveyor.worker.dlq import DlqWorker
from tests.dlq.dlq_helpers import Q, died_ms, kill, states, wait_broker_time


def _noop(payload: object) -> None:
    return None


def _outcomes(job: Job) -> list[str]:
    return [h.outcome for h in job.history]


async def _fail_again(client: AsyncConveyor, job_id: str) -> None:
    """Run the redriven job and fail it for good (as a worker would)."""
    from conveyor.brokers.base import FailItem

    batch = await client.broker.fetch(Q, 1, "w", 60_000)
    assert [d.job_id for d in batch.deliveries] == [job_id]
    d = batch.deliveries[0]
    assert await client.broker.fail([FailItem(job_id, d.token, "e", "again")]) == [JobState.DEAD]


async def _poison(client: AsyncConveyor, type: str) -> str:
    """A job whose lease expires on its only attempt: DEAD with lease_expired."""
    job = await client.enqueue(type, queue=Q, max_attempts=1)
    batch = await client.broker.fetch(Q, 1, "w", 20)
    assert [d.job_id for d in batch.deliveries] == [job.id]
    await wait_broker_time(client.broker, batch.now_ms + 25)
    assert (await client.broker.reap_expired(Q)).dead == 1
    return job.id


# --- redrive policies -------------------------------------------------------------------------


async def test_policy_redrives_once_the_delay_has_passed(
    broker: Broker, client: AsyncConveyor, registry: Registry
) -> None:
    registry.handler("p", redrive_after=timedelta(milliseconds=300), max_redrives=2)(_noop)
    dlq = DlqWorker(registry)
    (job_id,) = await kill(client, type="p")
    await dlq(broker, [Q])
    assert await states(client, [job_id]) == [JobState.DEAD]  # died < 300 ms ago
    await wait_broker_time(broker, await died_ms(client, job_id) + 300)
    await dlq(broker, [Q])
    job = await client.get(job_id)
    assert job.state == JobState.QUEUED and job.attempts == 0
    assert (job.history[-1].outcome, job.history[-1].worker) == ("redriven", "policy")


async def test_policy_stops_at_max_redrives(
    broker: Broker, client: AsyncConveyor, registry: Registry
) -> None:
    registry.handler("p", redrive_after=0, max_redrives=2)(_noop)
    dlq = DlqWorker(registry)
    (job_id,) = await kill(client, type="p")
    for _ in range(2):
        await dlq(broker, [Q])
        assert await states(client, [job_id]) == [JobState.QUEUED]
        await _fail_again(client, job_id)
    for _ in range(3):
        await dlq(broker, [Q])
    job = await client.get(job_id)
    assert job.state == JobState.DEAD  # out of redrives: stays dead
    assert _outcomes(job) == ["dead", "redriven", "dead", "redriven", "dead"]
    assert dlq.redriven == 2


async def test_policy_leaves_poison_jobs_alone_unless_it_opts_in(
    broker: Broker, client: AsyncConveyor, registry: Registry
) -> None:
    registry.handler("p", redrive_after=0)(_noop)
    registry.handler("pp", redrive_after=0, redrive_poison=True)(_noop)
    dlq = DlqWorker(registry)
    poison = await _poison(client, "p")
    opted_in = await _poison(client, "pp")
    (plain,) = await kill(client, type="p")
    await dlq(broker, [Q])
    await dlq(broker, [Q])
    assert await states(client, [poison, opted_in, plain]) == [
        JobState.DEAD, JobState.QUEUED, JobState.QUEUED
    ]
    # an operator can still send the poison job back
    assert (await client.redrive_dead([poison], actor="cli:ops")).ids == [poison]


async def test_policy_walks_the_dlq_in_bounded_steps(
    broker: Broker, client: AsyncConveyor, registry: Registry
) -> None:
    registry.handler("p", redrive_after=0)(_noop)
    registry.handler("n")(_noop)  # no policy: never touched
    dlq = DlqWorker(registry, batch=2)
    others = await kill(client, 3, type="n")
    mine = await kill(client, 5, type="p")
    moved = [await dlq.apply_policies(broker, Q) for _ in range(4)]
    assert moved == [2, 2, 1, 0]
    assert await states(client, mine) == [JobState.QUEUED] * 5
    assert await states(client, others) == [JobState.DEAD] * 3
    # a job that dies again later is found by the same walk
    await _fail_again(client, sorted(mine)[0])
    assert await dlq.apply_policies(broker, Q) == 1


# --- on_dead hooks ----------------------------------------------------------------------------


async def test_sync_and_async_hooks_run_once_per_death(
    broker: Broker, client: AsyncConveyor, registry: Registry
) -> None:
    seen: list[tuple[str, str, JobState]] = []
    threads: list[bool] = []

    def sync_hook(job: Job) -> None:
        threads.append(threading.current_thread() is threading.main_thread())
        seen.append(("sync", job.id, job.state))

    async def async_hook(job: Job) -> None:
        await asyncio.sleep(0)
        seen.append(("async", job.id, job.state))

    registry.handler("h", on_dead=[sync_hook, async_hook])(_noop)
    dlq = DlqWorker(registry)
    ids = await kill(client, 2, type="h")
    await dlq(broker, [Q])
    assert sorted(seen) == sorted(
        (kind, i, JobState.DEAD) for kind in ("sync", "async") for i in ids
    )
    assert threads == [False, False]  # sync hooks never block the event loop
    await dlq(broker, [Q])
    assert len(seen) == 4  # acked: not run again

    await client.retry(ids[0])  # a second death of the same job is a new event
    await _fail_again(client, ids[0])
    await dlq(broker, [Q])
    assert len(seen) == 6 and seen[-1][1] == ids[0]


async def test_a_failing_hook_is_logged_and_the_job_is_intact(
    broker: Broker, client: AsyncConveyor, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def bad(job: Job) -> None:
        job.payload = "changed by the hook"  # a copy: nothing stored changes
        raise RuntimeError("pager is down")

    async def slow(job: Job) -> None:
        await asyncio.sleep(30)

    def good(job: Job) -> None:
        ran.append(job.id)

    registry.handler("h", on_dead=[bad, slow, good])(_noop)
    dlq = DlqWorker(registry, hook_timeout_s=0.05)
    (job_id,) = await kill(client, type="h")
    before = await client.get(job_id)
    with caplog.at_level(logging.ERROR, logger="conveyor.worker.dlq"):
        await dlq(broker, [Q])
    assert ran == [job_id]
    assert dlq.hooks_failed == 2 and dlq.hooks_run == 1
    failures = [r for r in caplog.records if r.getMessage() == "on_dead_hook_failed"]
    assert len(failures) == 2 and failures[0].exc_info is not None
    assert await client.get(job_id) == before
    await dlq(broker, [Q])
    assert ran == [job_id]  # logged, not retried


async def test_a_hook_cut_short_by_a_crash_runs_again_after_the_claim_lease(
    broker: Broker, client: AsyncConveyor, registry: Registry
) -> None:
    ran: list[str] = []
    registry.handler("h", on_dead=lambda job: ran.append(job.id))(_noop)
    (job_id,) = await kill(client, type="h")
    claimed_at = await broker.now_ms()
    # a worker claims the death and dies before running the hook or acking
    (event,) = await broker.claim_deaths(Q, 10, 100)
    assert event.job_id == job_id
    dlq = DlqWorker(registry)
    await dlq(broker, [Q])
    assert ran == []  # still claimed: another worker does not usually run it too
    await wait_broker_time(broker, claimed_at + 110)
    await dlq(broker, [Q])
    assert ran == [job_id]
    await dlq(broker, [Q])
    assert ran == [job_id]


async def test_events_of_types_this_worker_does_not_know_are_left_to_others(
    broker: Broker, client: AsyncConveyor, registry: Registry
) -> None:
    ran: list[str] = []
    (job_id,) = await kill(client, type="theirs")
    stranger = DlqWorker(Registry(), claim_lease_s=0.05)
    claimed_at = await broker.now_ms()
    await stranger(broker, [Q])
    registry.handler("theirs", on_dead=lambda job: ran.append(job.id))(_noop)
    await wait_broker_time(broker, claimed_at + 60)
    await DlqWorker(registry)(broker, [Q])
    assert ran == [job_id]


async def test_deaths_without_hooks_or_job_are_simply_acked(
    broker: Broker, client: AsyncConveyor, registry: Registry
) -> None:
    registry.handler("n")(_noop)
    registry.handler("h", on_dead=lambda job: None)(_noop)
    await kill(client, type="n")
    (gone,) = await kill(client, type="h")
    assert (await client.purge_dead([gone])).ids == [gone]
    with pytest.raises(JobNotFound):
        await client.get(gone)
    await DlqWorker(registry)(broker, [Q])
    assert await broker.claim_deaths(Q, 10, 60_000) == []


async def test_hundreds_of_deaths_run_their_hooks_with_bounded_concurrency(
    broker: Broker, client: AsyncConveyor, registry: Registry
) -> None:
    """300 deaths in one pass: their jobs are read in one batch and their hooks run a bounded
    number at a time, so hooks that use the broker themselves never exhaust its pool."""
    ran: list[str] = []
    running = peak = 0

    async def hook(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            assert (await broker.get(job.id)).state == JobState.DEAD
            await asyncio.sleep(0.01)
            ran.append(job.id)
        finally:
            running -= 1

    registry.handler("h", on_dead=hook)(_noop)
    ids = await kill(client, 300, type="h")
    dlq = DlqWorker(registry, batch=300)
    await dlq(broker, [Q])
    assert sorted(ran) == sorted(ids)
    assert dlq.hooks_failed == 0
    assert 1 < peak <= 16
