"""Big results against real Redis servers: the result cap (`CONVEYOR_MAX_RESULT_BYTES`), and a
completions batch the server refuses (it resets the connection on an oversized request) which
must not wedge the worker: the batch is split, the bad outcome isolated, the rest sent."""

from __future__ import annotations

import asyncio
import logging

import pytest

from conveyor.brokers.base import AckItem, FailItem
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from conveyor.handlers import Registry
from conveyor.jobs import JobState
from conveyor.worker.completions import MAX_BATCH_BYTES, SUSPECT_BYTES, Completions
from tests.support.inproc import make_settings
from tests.support.waits import wait_for_state
from tests.worker.worker_helpers import QUEUE, OwnRedis, RunWorker

DONE = {JobState.SUCCEEDED, JobState.DEAD}
#: The smallest request limits Redis accepts. Over the query buffer limit the server resets
#: the connection (what an 11 x 48 MB ack meets on a default server: it looks like "Redis
#: down"); over the bulk length it answers an error, then closes.
QUERY_BUFFER = ("--client-query-buffer-limit", "1mb")
BULK_LENGTH = ("--proto-max-bulk-len", "1mb")
LIMITS = pytest.mark.parametrize(
    "limits", [QUERY_BUFFER, BULK_LENGTH], ids=["query-buffer-reset", "bulk-length-refused"]
)


@LIMITS
async def test_an_oversized_ack_batch_is_split_and_nothing_wedges(
    registry: Registry, own_redis: OwnRedis, run_worker: RunWorker, limits: tuple[str, ...]
) -> None:
    """Eleven 300 kB results finish together: one 3.3 MB ack the server resets. Today the
    worker resends it forever and nothing behind it is ever acked."""
    broker = await own_redis(*limits)
    client = AsyncConveyor(broker, registry=registry)
    started = 0
    together = asyncio.Event()

    @registry.handler("big", max_attempts=1)
    async def big(payload: int) -> str:
        nonlocal started
        started += 1
        if started == 11:
            together.set()
        await together.wait()  # all eleven return in one loop turn: one ack batch
        return str(payload) * 300_000

    @registry.handler("small", max_attempts=1)
    async def small(payload: int) -> int:
        return payload

    bigs = [await client.enqueue("big", i, queue=QUEUE) for i in range(11)]
    async with run_worker(concurrency=12, on=broker) as worker:
        await asyncio.wait_for(together.wait(), 10)
        smalls = [await client.enqueue("small", i, queue=QUEUE) for i in range(20)]
        done = [await wait_for_state(client, j.id, DONE) for j in bigs + smalls]
    assert [j.state for j in done] == [JobState.SUCCEEDED] * 31
    assert [j.attempts for j in done] == [1] * 31
    assert done[0].result == "0" * 300_000
    assert [j.result for j in done[11:]] == list(range(20))
    assert worker.completions.acked == 31
    # It learned the server's limit: later batches stay under it instead of being split.
    assert SUSPECT_BYTES <= worker.completions.max_batch_bytes < MAX_BATCH_BYTES


@LIMITS
async def test_an_outcome_the_server_refuses_alone_fails_only_its_job(
    registry: Registry, own_redis: OwnRedis, run_worker: RunWorker,
    caplog: pytest.LogCaptureFixture, limits: tuple[str, ...],
) -> None:
    """A 1.5 MB result is under the worker's cap but over the server's limit: that job fails
    with `result_too_large` (it would fail the same way again); its neighbours succeed."""
    broker = await own_redis(*limits)
    client = AsyncConveyor(broker, registry=registry)
    together = asyncio.Event()
    started = 0

    @registry.handler("sized", max_attempts=3)
    async def sized(payload: int) -> str:
        nonlocal started
        started += 1
        if started == 6:
            together.set()
        await together.wait()
        return "y" * payload

    sizes = [1000, 1_500_000, 1000, 2000, 3000, 4000]
    jobs = [await client.enqueue("sized", n, queue=QUEUE) for n in sizes]
    settings = make_settings(max_result_bytes=4 * 1024 * 1024)
    with caplog.at_level(logging.WARNING, logger="conveyor.worker.completions"):
        async with run_worker(concurrency=6, settings=settings, on=broker):
            done = [await wait_for_state(client, j.id, DONE) for j in jobs]
    states = [j.state for j in done]
    assert states == [JobState.SUCCEEDED, JobState.DEAD] + [JobState.SUCCEEDED] * 4
    dead = done[1]
    assert dead.attempts == 1
    assert dead.last_error is not None and dead.last_error.code == "result_too_large"
    assert "refused" in dead.last_error.message
    assert any(jobs[1].id in r.getMessage() or getattr(r, "job_id", "") == jobs[1].id
               for r in caplog.records)


async def test_a_result_over_the_cap_fails_that_job_at_once(
    registry: Registry, client: AsyncConveyor, run_worker: RunWorker
) -> None:
    @registry.handler("sized", max_attempts=3)
    async def sized(payload: int) -> str:
        return "z" * payload

    small = await client.enqueue("sized", 900, queue=QUEUE)
    large = await client.enqueue("sized", 5000, queue=QUEUE)
    async with run_worker(settings=make_settings(max_result_bytes=1000)):
        ok = await wait_for_state(client, small.id, DONE)
        bad = await wait_for_state(client, large.id, DONE)
    assert ok.state is JobState.SUCCEEDED
    assert bad.state is JobState.DEAD
    assert bad.attempts == 1  # permanent: the same work would build the same result
    assert bad.result is None
    assert bad.last_error is not None and bad.last_error.code == "result_too_large"
    assert "5002 bytes" in bad.last_error.message  # the JSON text: 5000 + 2 quotes
    assert "CONVEYOR_MAX_RESULT_BYTES" in bad.last_error.message


class RecordingBroker(RedisBroker):
    """The real Redis broker, remembering the size of every ack call it is given."""

    calls: list[tuple[int, int]]

    async def ack(self, items):  # type: ignore[no-untyped-def]
        self.calls.append((len(items), sum(len(i.result_json) for i in items)))
        return await super().ack(items)


async def test_completion_batches_are_bounded_by_count_and_bytes(
    broker: RedisBroker, client: AsyncConveyor, prefix: str
) -> None:
    client.validate_types = False
    jobs = [await client.enqueue("any", i, queue=QUEUE) for i in range(60)]
    batch = await broker.fetch(QUEUE, 60, "w-test", 30_000)
    assert len(batch.deliveries) == 60
    recorder = RecordingBroker(broker.client, key_prefix=prefix)
    recorder.calls = []
    completions = Completions(recorder, max_batch_items=25, max_batch_bytes=100_000)
    for d in batch.deliveries:
        completions.submit(AckItem(d.job_id, d.token, '"' + "r" * 9998 + '"'))
    await completions.flush()
    await completions.close()
    assert completions.acked == 60
    assert sum(n for n, _ in recorder.calls) == 60
    assert all(n <= 10 and size <= 100_000 for n, size in recorder.calls), recorder.calls
    assert len(recorder.calls) >= 6  # 10 kB results, 100 kB per batch (with its overhead)
    states = {(await client.get(j.id)).state for j in jobs}
    assert states == {JobState.SUCCEEDED}


async def test_an_unsendable_outcome_never_takes_the_batch_with_it(
    broker: RedisBroker, client: AsyncConveyor, caplog: pytest.LogCaptureFixture
) -> None:
    """A fail the broker cannot take (a lone surrogate reached it) is dropped and logged;
    the twenty beside it in the same batch land."""
    client.validate_types = False
    jobs = [await client.enqueue("any", i, queue=QUEUE, max_attempts=1) for i in range(21)]
    batch = await broker.fetch(QUEUE, 21, "w-test", 30_000)
    completions = Completions(broker)
    for i, d in enumerate(batch.deliveries):
        message = "bad \udcff name" if i == 7 else f"error {i}"
        completions.submit(FailItem(d.job_id, d.token, "handler_error", message))
    with caplog.at_level(logging.WARNING, logger="conveyor.worker.completions"):
        await completions.flush()
        await completions.close()
    done = {j.id: await client.get(j.id) for j in jobs}
    odd = batch.deliveries[7].job_id
    for i, d in enumerate(batch.deliveries):
        if d.job_id == odd:
            continue
        job = done[d.job_id]
        assert job.state is JobState.DEAD
        assert job.last_error is not None and job.last_error.message == f"error {i}"
    assert completions.failed >= 20


class SlowAckBroker(RedisBroker):
    """The real Redis broker behind a slow link for acks: the first takes 2.5 s to go out."""

    delayed = False

    async def ack(self, items):  # type: ignore[no-untyped-def]
        if not self.delayed:
            self.delayed = True
            await asyncio.sleep(2.5)
        return await super().ack(items)


async def test_an_outcome_waiting_to_be_sent_keeps_its_lease(
    registry: Registry, broker: RedisBroker, prefix: str, run_worker: RunWorker
) -> None:
    """The handler finished but its ack waits (a slow or splitting broker) for longer than
    the lease. Today the lease is no longer extended once the handler returns: the job is
    reaped, runs again and the first ack is refused."""
    slow = SlowAckBroker(broker.client, key_prefix=prefix)
    client = AsyncConveyor(slow, registry=registry)
    runs = 0

    @registry.handler("once", max_attempts=3)
    async def once(payload: None) -> int:
        nonlocal runs
        runs += 1
        return runs

    job = await client.enqueue("once", queue=QUEUE)
    async with run_worker(settings=make_settings(lease_s=1.0), on=slow):
        done = await wait_for_state(client, job.id, DONE)
    assert (done.state, done.attempts, done.result) == (JobState.SUCCEEDED, 1, 1)
    assert runs == 1
    assert [h.outcome for h in done.history] == ["succeeded"]
