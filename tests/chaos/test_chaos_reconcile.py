"""The reconciliation itself: fed broken histories on purpose, each check must fail, so a
green chaos run means something. No worker processes: the broker is driven by hand."""

from __future__ import annotations

import os

from conveyor.brokers.base import AckItem
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.ids import new_job_id
from tests.chaos.chaos_support import QUEUE, WORK_TYPE
from tests.chaos.ledger import Event, Ledger
from tests.chaos.reconcile import reconcile


async def _run_once(
    broker: RedisBroker, ledger: Ledger, *, result_token: str | None = None,
    extra_done: int = 0,
) -> str:
    """Fetch the next job as worker w1, record its run, ack it with a result naming
    `result_token` (default: the real one)."""
    batch = await broker.fetch(QUEUE, 1, "w1", 60_000)
    [d] = batch.deliveries
    ledger.record(d.job_id, d.attempts, d.token, os.getpid(), "w1", Event.START)
    ledger.record(d.job_id, d.attempts, d.token, os.getpid(), "w1", Event.DONE)
    for n in range(extra_done):  # a run of a delivery the broker never made
        ledger.record(d.job_id, d.attempts, f"9{n}", os.getpid(), "w9", Event.DONE)
    token = d.token if result_token is None else result_token
    result = f'{{"token": "{token}", "pid": {os.getpid()}, "worker": "w1"}}'
    assert await broker.ack([AckItem(d.job_id, d.token, result)]) == [True]
    return d.job_id


async def test_each_check_of_the_reconciliation_can_fail(
    client: AsyncConveyor, main_broker: RedisBroker, ledger: Ledger
) -> None:
    request = JobRequest(WORK_TYPE, {"ms": 0}, QUEUE, max_attempts=3)
    ids = [r.job_id for r in await client.enqueue_many([request] * 4)]
    good = await _run_once(main_broker, ledger)
    twice = await _run_once(main_broker, ledger, extra_done=1)  # no lost lease explains it
    stale = await _run_once(main_broker, ledger, result_token="99")  # not the lease holder's
    never_run = ids[3]
    ghost = new_job_id(QUEUE)  # acknowledged, never stored

    rec = await reconcile(main_broker, QUEUE, [*ids, ghost], ledger.by_job())
    assert rec.missing == [ghost]
    assert rec.unfinished == [never_run]
    assert rec.duplicated == [twice]
    # twice: the extra run; stale: its real run, since the result that counted is not it
    assert sorted(u.split(" ")[0] for u in rec.unexplained) == sorted([twice, stale])
    assert rec.stale_accepted == [stale]
    assert rec.leftovers["queued"] == 1
    assert rec.succeeded == 3 and good not in rec.stale_accepted
    problems = "\n".join(rec.problems())
    for name in ("missing", "unfinished", "unexplained", "stale_accepted", "not drained"):
        assert name in problems, problems


async def test_the_series_check_can_fail(
    client: AsyncConveyor, main_broker: RedisBroker, ledger: Ledger
) -> None:
    request = JobRequest(WORK_TYPE, {"ms": 0}, QUEUE, max_attempts=3)
    ids = [r.job_id for r in await client.enqueue_many([request] * 2)]
    for _ in ids:
        await _run_once(main_broker, ledger)
    rec = await reconcile(main_broker, QUEUE, ids, ledger.by_job())
    assert rec.series_mismatch == {} and rec.series == (2, 0, 0)
    # one success more in the series than in the histories: the check must say so
    now = await main_broker.now_ms()
    key = main_broker.keys.queue(QUEUE).series(now // 3_600_000)
    await main_broker.client.hincrby(key, f"{now // 60_000}:s:", 1)
    rec = await reconcile(main_broker, QUEUE, ids, ledger.by_job())
    assert rec.series_mismatch == {"": ((2, 0, 0), (3, 0, 0))}
    assert "series differ" in "\n".join(rec.problems())
