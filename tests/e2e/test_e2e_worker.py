"""End to end: real `conveyor worker` processes on the real Redis, driven by the async client.

Each scenario is about what survives a process boundary: a SIGKILL mid-job, a SIGTERM with a
job in hand, retries and the DLQ as seen from outside, and a rolling restart under load.
"""

from __future__ import annotations

import asyncio
import signal
import textwrap
from pathlib import Path

import pytest

from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import JobState
from tests.e2e.e2e_support import QUEUE, StartWorker, WorkerProcess, assert_clean, outcomes
from tests.support.waits import wait_for_state, wait_until

pytestmark = pytest.mark.e2e

LONG_JOB_MS = 3000
#: lease 1.5 s + reap period 0.2 s + the 3 s job, with room for a slow machine
REDELIVERY_TIMEOUT_S = 20.0
#: SIGTERM to exit: grace + releasing + closing, on a slow machine
EXIT_TIMEOUT_S = 5.0

DONE = (JobState.SUCCEEDED, JobState.DEAD)


def assert_no_errors(*workers: WorkerProcess) -> None:
    for w in workers:
        bad = w.error_lines()
        assert not bad, f"{w.name} logged errors:\n" + "\n".join(bad)


async def test_sigkill_mid_job_is_redelivered_after_the_lease_expires(
    client: AsyncConveyor, start_worker: StartWorker
) -> None:
    first = await start_worker(concurrency=1, lease_s=1.5)
    job = await client.enqueue("fake", {"duration_ms": LONG_JOB_MS, "result": "done"},
                               queue=QUEUE)
    await wait_for_state(client, job.id, [JobState.RUNNING])

    first.kill()
    assert await first.wait_exit(EXIT_TIMEOUT_S) == -signal.SIGKILL
    assert (await client.get(job.id)).state is JobState.RUNNING  # nobody released it
    second = await start_worker(concurrency=1, lease_s=1.5)

    done = await wait_for_state(client, job.id, DONE, timeout_s=REDELIVERY_TIMEOUT_S)
    assert done.state is JobState.SUCCEEDED, done.model_dump_json(indent=1)
    assert done.result == "done"
    assert done.attempts == 2
    assert outcomes(done) == ["lease_expired", "succeeded"]
    expired, succeeded = done.history
    assert (expired.attempt, expired.error_code) == (1, "lease_expired")
    assert expired.worker == first.worker_id
    assert (succeeded.attempt, succeeded.worker) == (2, second.worker_id)
    assert_no_errors(second)
    await assert_clean(client)


async def test_sigterm_mid_job_releases_it_and_refunds_the_attempt(
    client: AsyncConveyor, start_worker: StartWorker
) -> None:
    first = await start_worker(concurrency=1, grace_s=0.5)
    job = await client.enqueue("fake", {"duration_ms": LONG_JOB_MS}, queue=QUEUE)
    await wait_for_state(client, job.id, [JobState.RUNNING])

    loop = asyncio.get_running_loop()
    sent = loop.time()
    first.terminate()
    assert await first.wait_exit(EXIT_TIMEOUT_S) == 0, first.logs()
    # It gave up after the grace period: the 3 s job cannot have finished on it.
    assert loop.time() - sent < LONG_JOB_MS / 1000, first.logs()

    released = await client.get(job.id)
    assert released.state is JobState.QUEUED, released.model_dump_json(indent=1)
    assert released.attempts == 0
    assert outcomes(released) == ["released"]
    assert released.history[0].error_code == "worker_shutdown"
    assert not any(first.is_me(i) for i in await client.workers())

    second = await start_worker(concurrency=1)
    done = await wait_for_state(client, job.id, DONE, timeout_s=REDELIVERY_TIMEOUT_S)
    assert done.state is JobState.SUCCEEDED, done.model_dump_json(indent=1)
    assert done.attempts == 1
    assert outcomes(done) == ["released", "succeeded"]
    assert done.history[-1].worker == second.worker_id
    assert_no_errors(first, second)
    await assert_clean(client)


async def test_retryable_failures_succeed_on_the_third_attempt(
    client: AsyncConveyor, start_worker: StartWorker
) -> None:
    worker = await start_worker(concurrency=2)
    job = await client.enqueue("fake", {"fail_times": 2, "result": 42}, queue=QUEUE)

    done = await wait_for_state(client, job.id, DONE, timeout_s=15.0)
    assert done.state is JobState.SUCCEEDED, done.model_dump_json(indent=1)
    assert done.result == 42
    assert done.attempts == 3
    assert outcomes(done) == ["failed", "failed", "succeeded"]
    assert [h.error_code for h in done.history[:2]] == ["handler_error", "handler_error"]
    assert [h.attempt for h in done.history] == [1, 2, 3]
    assert_no_errors(worker)
    await assert_clean(client)


async def test_permanent_failure_is_dead_after_one_attempt(
    client: AsyncConveyor, start_worker: StartWorker
) -> None:
    worker = await start_worker(concurrency=2)
    job = await client.enqueue("fake", {"permanent": True}, queue=QUEUE)

    dead = await wait_for_state(client, job.id, DONE)
    assert dead.state is JobState.DEAD, dead.model_dump_json(indent=1)
    assert dead.attempts == 1
    assert dead.last_error is not None
    assert dead.last_error.code == "permanent_failure"
    assert outcomes(dead) == ["dead"]
    assert [j.id for j in (await client.dlq_list(QUEUE)).items] == [job.id]
    assert_no_errors(worker)
    await assert_clean(client)


GATE_MODULE = '''
"""A handler that fails permanently while the file named in its payload exists."""

from pathlib import Path

from conveyor.errors import PermanentError
from conveyor.handlers import handler


@handler("e2e.gate", max_attempts=3)
def gate(payload: dict) -> str:
    if Path(payload["path"]).exists():
        raise PermanentError("gate closed: " + payload["path"])
    return "passed"
'''


async def test_dead_job_retried_by_hand_runs_again_and_succeeds(
    client: AsyncConveyor, start_worker: StartWorker, tmp_path: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "e2e_gate.py").write_text(textwrap.dedent(GATE_MODULE))
    gate = tmp_path / "gate-closed"
    gate.touch()
    worker = await start_worker(concurrency=1, app="e2e_gate", pythonpath=app_dir)
    # The type lives only in the worker's app; this process does not know it.
    untyped = AsyncConveyor(client.broker, validate_types=False)
    job = await untyped.enqueue("e2e.gate", {"path": str(gate)}, queue=QUEUE, max_attempts=3)

    dead = await wait_for_state(client, job.id, DONE)
    assert dead.state is JobState.DEAD, dead.model_dump_json(indent=1)
    assert dead.attempts == 1
    assert dead.last_error is not None
    assert dead.last_error.code == "permanent_failure"

    gate.unlink()
    retried = await client.retry(job.id)
    assert retried.state in (JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED)

    done = await wait_for_state(client, job.id, DONE)
    assert done.state is JobState.SUCCEEDED, done.model_dump_json(indent=1)
    assert done.result == "passed"
    assert done.attempts == 1  # a manual retry starts the count again
    assert outcomes(done) == ["dead", "retried", "succeeded"]
    assert (await client.dlq_list(QUEUE)).items == []
    assert_no_errors(worker)
    await assert_clean(client)


async def test_sigterm_when_idle_exits_promptly_and_deregisters(
    client: AsyncConveyor, start_worker: StartWorker
) -> None:
    worker = await start_worker(concurrency=2, grace_s=5.0)
    other = await start_worker(concurrency=2, grace_s=5.0)

    loop = asyncio.get_running_loop()
    sent = loop.time()
    worker.terminate()
    assert await worker.wait_exit(EXIT_TIMEOUT_S) == 0, worker.logs()
    # Nothing to drain: it must not sit out its 5 s grace period.
    assert loop.time() - sent < 3.0, worker.logs()
    # Deregistered on the way out, not left to age out of the registry (TTL 15 s).
    listed = await client.workers()
    assert not any(worker.is_me(i) for i in listed), listed
    assert any(other.is_me(i) for i in listed), listed
    assert_no_errors(worker)
    await assert_clean(client)


async def test_rolling_restart_under_light_load_charges_no_attempt_twice(
    client: AsyncConveyor, start_worker: StartWorker
) -> None:
    total = 200
    # grace 0: a stopping worker releases what it holds at once, so the refund path runs.
    leaving = await start_worker(concurrency=2, grace_s=0.0)
    staying = await start_worker(concurrency=2, grace_s=0.0)
    results = await client.enqueue_many(
        [JobRequest("fake", {"duration_ms": 20}, QUEUE)] * total
    )
    ids = {r.job_id for r in results}
    assert len(ids) == total

    async def succeeded_count() -> int:
        return (await client.stats([QUEUE]))[QUEUE]["succeeded"]

    async def midway() -> bool:
        return await succeeded_count() >= total // 4

    await wait_until(midway, "a quarter of the jobs to succeed", timeout_s=20.0)
    leaving.terminate()
    assert await succeeded_count() < total, "the load finished before the restart"
    newcomer = await start_worker(concurrency=2, grace_s=0.0)
    assert await leaving.wait_exit(EXIT_TIMEOUT_S) == 0, leaving.logs()

    async def all_done() -> bool:
        counts = (await client.stats([QUEUE]))[QUEUE]
        return counts["succeeded"] + counts["dead"] == total

    await wait_until(all_done, f"all {total} jobs to finish", timeout_s=30.0)
    page = await client.list_jobs(queue=QUEUE, state=JobState.SUCCEEDED, limit=1000)
    jobs = {j.id: j for j in page.items}
    assert set(jobs) == ids
    twice = {j.id: j.attempts for j in jobs.values() if j.attempts != 1}
    assert not twice, f"jobs charged more than one attempt: {twice}"
    for j in jobs.values():  # a released run is in the history, refunded
        assert [h.outcome for h in j.history if h.outcome != "released"] == ["succeeded"]
    assert_no_errors(leaving, staying, newcomer)
    await assert_clean(client)


async def test_one_worker_on_three_queues_runs_them_all(
    client: AsyncConveyor, start_worker: StartWorker
) -> None:
    """On Cluster the three queues are on three primaries (slots 1964, 10222 and 14287
    under `redis-cli --cluster create`'s even split): the worker's wake-ups and fetches never
    span slots."""
    queues = ["e2e-a", "e2e-b", "e2e-c"]
    worker = await start_worker(concurrency=3, queues=",".join(queues))
    jobs = await client.enqueue_many(
        [JobRequest(type="fake", payload={"result": i}, queue=q)
         for i, q in enumerate(queues * 2)])
    for i, res in enumerate(jobs):
        done = await wait_for_state(client, res.job_id, DONE, timeout_s=15.0)
        assert done.state is JobState.SUCCEEDED and done.result == i
    assert_no_errors(worker)
    for q in queues:
        await assert_clean(client, q)
