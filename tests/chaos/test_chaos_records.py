"""Fault suite, record faults: corrupt job records mixed into a loaded queue (10). Real worker
processes on the shared Redis, under the test's own key prefix. Each damaged record is met
by a different script: fetch (queued ones), promote (scheduled ones), reap (one held by a
worker that vanished) and ack (one damaged while a worker runs it). Every healthy job must
end SUCCEEDED exactly as without the damage (reconciled against the ledger), and every
damaged one DEAD `corrupt_job`, listed in the DLQ as such, naming the field."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.ids import split_job_id
from conveyor.jobs import JobState
from tests.chaos.chaos_support import (
    QUEUE,
    WORK_TYPE,
    Figures,
    Scale,
    Workers,
    WorkerSpec,
    enqueue_work,
    wait_drained,
    with_spec,
)
from tests.chaos.ledger import Ledger
from tests.chaos.reconcile import reconcile
from tests.support.waits import wait_until

#: (hash field, value; None: the field is deleted), and the field's name in the message
#: (damage fetch meets: the fields it reads)
QUEUED_DAMAGE: list[tuple[str, str | None, str]] = [
    ("attempts", "abc", "attempts"), ("attempts", "-5", "attempts"),
    ("max_att", None, "max_attempts"), ("max_att", "0", "max_attempts"),
    ("state", "zombie", "state"), ("timeout", "soon", "timeout"), ("type", None, "type"),
    ("payload", None, "payload"),
]


async def _damage(broker: RedisBroker, job_id: str, field: str, value: str | None) -> None:
    queue, uid = split_job_id(job_id)
    key = broker.keys.queue(queue).job(uid)
    if value is None:
        await broker.client.hdel(key, field)
    else:
        await broker.client.hset(key, field, value)


async def test_corrupt_records_among_healthy_jobs_are_set_aside(
    scale: Scale, client: AsyncConveyor, main_broker: RedisBroker, workers: Workers,
    spec: WorkerSpec, ledger: Ledger, figures: Figures,
) -> None:
    """Scenario 11: corrupt records in a loaded queue. Before the fix one of them stopped a
    fetch half-way: the jobs popped with it sat in no index, `queued` forever."""
    rng = random.Random(10)
    rounds = scale.of(1, 3)
    bad: dict[str, str] = {}  # job id -> the field named in its message

    # reap: jobs leased by a "worker" that vanishes at once, damaged while it holds them
    held = [r.job_id for r in await client.enqueue_many(
        [JobRequest(WORK_TYPE, {"ms": 1}, QUEUE, max_attempts=3)] * (2 * rounds))]
    ghost = await main_broker.fetch(QUEUE, len(held), "ghost", 200)
    assert sorted(d.job_id for d in ghost.deliveries) == sorted(held)
    for i, job_id in enumerate(held):
        field, value, name = (("max_att", None, "max_attempts"), ("attempts", "-1", "attempts"))[
            i % 2]
        await _damage(main_broker, job_id, field, value)
        bad[job_id] = name

    # fetch and promote: damaged records spread through the healthy ones
    good: list[str] = []
    healthy = scale.of(100, 1000)
    for i in range(rounds):
        share = healthy // rounds + (1 if i < healthy % rounds else 0)
        good += await enqueue_work(client, share, (1, 20), rng=rng)
        for field, value, name in QUEUED_DAMAGE:
            (job_id,) = await enqueue_work(client, 1, (1, 1), rng=rng)
            await _damage(main_broker, job_id, field, value)
            bad[job_id] = name
        (later,) = [r.job_id for r in await client.enqueue_many(
            [JobRequest(WORK_TYPE, {"ms": 1}, QUEUE, delay=0.5)])]
        await _damage(main_broker, later, "prio", "1e3")  # Lua's tonumber would take it
        bad[later] = "priority"
    # ack: long jobs damaged while a worker runs them (its ack is refused, set aside)
    in_flight = [r.job_id for r in await client.enqueue_many(
        [JobRequest(WORK_TYPE, {"ms": 2000}, QUEUE, max_attempts=1)] * rounds)]
    rng.shuffle(good)

    waiting = list(in_flight)

    async def damage_once_running() -> bool | None:
        """Each long job is damaged as soon as it runs (2 s before its worker acks)."""
        qk = main_broker.keys.queue(QUEUE)
        for job_id in list(waiting):
            if await main_broker.client.zscore(qk.running, split_job_id(job_id)[1]) is not None:
                await _damage(main_broker, job_id, "attempts", "x")
                bad[job_id] = "attempts"
                waiting.remove(job_id)
        return True if not waiting else None

    started = time.monotonic()
    watch = asyncio.create_task(
        wait_until(damage_once_running, "the long jobs to start", scale.of(30.0, 120.0)))
    run_spec = with_spec(spec, concurrency=4, lease_s=1.0)
    for _ in range(scale.of(2, 3)):
        await workers.start(run_spec)
    await watch

    total = len(good) + len(bad)
    await wait_drained(client, total, timeout_s=scale.of(60.0, 300.0))
    elapsed = time.monotonic() - started

    rec = await reconcile(main_broker, QUEUE, good, ledger.by_job())
    figures.emit("11 corrupt records", **rec.figures(), faults=len(bad),
                 corrupt_records=len(bad), seconds=round(elapsed, 1), recover_max_s=None)
    rec.assert_ok()
    assert rec.succeeded == len(good) and rec.duplicated == []
    stats = (await client.stats([QUEUE]))[QUEUE]
    assert (stats[JobState.SUCCEEDED], stats[JobState.DEAD]) == (len(good), len(bad))

    listed: dict[str, Any] = {}
    cursor = None
    while True:  # every damaged job is in the DLQ, reported as corrupt, naming its field
        page = await main_broker.dlq_list(QUEUE, 1000, cursor)
        listed.update({j.id: j for j in page.items})
        cursor = page.next_cursor
        if cursor is None:
            break
    assert set(listed) == set(bad)
    for job_id, name in bad.items():
        error = listed[job_id].last_error
        assert error is not None and error.code == "corrupt_job", (job_id, error)
        assert name in error.message, (job_id, name, error.message)
