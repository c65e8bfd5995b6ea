"""`GET /v1/jobs/{id}/wait` (issue 17): the job as soon as it is finished, or after
`timeout_s` with its current state (200 either way), 404 for an unknown job, 422 for a
timeout out of 0-60; and the waiter race with half the waits by HTTP long poll."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from conveyor.brokers.base import AckItem
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import JobState
from tests.support.asgi import error_of

Q = "waitq"


async def test_wait_answers_when_the_job_finishes(
    api: httpx.AsyncClient, conveyor: AsyncConveyor,
) -> None:
    job = await conveyor.enqueue("fake", {}, queue=Q)
    r = await api.get(f"/v1/jobs/{job.id}/wait", params={"timeout_s": 0})
    assert r.status_code == 200 and r.json()["state"] == "queued"

    async def finish() -> None:
        await asyncio.sleep(0.2)
        batch = await conveyor.broker.fetch(Q, 1, "w", 60_000)
        [d] = batch.deliveries
        assert await conveyor.broker.ack([AckItem(d.job_id, d.token, '{"ok": true}')]) == [True]

    task = asyncio.create_task(finish())
    r = await api.get(f"/v1/jobs/{job.id}/wait", params={"timeout_s": 10})
    await task
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["result"]) == ("succeeded", {"ok": True})
    # finished before the call: at once
    r = await api.get(f"/v1/jobs/{job.id}/wait")
    assert r.json()["state"] == "succeeded"


async def test_wait_times_out_with_the_current_state(
    api: httpx.AsyncClient, conveyor: AsyncConveyor,
) -> None:
    job = await conveyor.enqueue("fake", {}, queue=Q)
    r = await api.get(f"/v1/jobs/{job.id}/wait", params={"timeout_s": 0.3})
    assert r.status_code == 200 and r.json()["state"] == "queued"


@pytest.mark.parametrize("seconds", ["-1", "60.5", "61", "abc", "nan", "inf"])
async def test_wait_refuses_a_timeout_out_of_range(
    api: httpx.AsyncClient, conveyor: AsyncConveyor, seconds: str,
) -> None:
    job = await conveyor.enqueue("fake", {}, queue=Q)
    r = await api.get(f"/v1/jobs/{job.id}/wait", params={"timeout_s": seconds})
    assert r.status_code == 422
    assert error_of(r)["code"] == "validation_error"


async def test_wait_for_an_unknown_job(api: httpx.AsyncClient) -> None:
    r = await api.get(f"/v1/jobs/{Q}:{'0' * 32}/wait", params={"timeout_s": 1})
    assert r.status_code == 404 and error_of(r)["code"] == "job_not_found"


async def test_waiter_race_half_by_http(api: httpx.AsyncClient, conveyor: AsyncConveyor) -> None:
    """The issue's race, scaled down: 300 jobs finishing 5 ms apart, each waited on from a
    random moment between 50 ms before and 50 ms after its finish, every other one by HTTP
    long poll (600, 1 ms apart: `tests/chaos/test_chaos_wait.py`)."""
    await http_waiter_race(api, conveyor, jobs=300, spacing_s=0.005)


async def http_waiter_race(
    api: httpx.AsyncClient, conveyor: AsyncConveyor, *, jobs: int, spacing_s: float,
) -> None:
    rng = random.Random(17)
    results = await conveyor.enqueue_many(
        [JobRequest(type="fake", payload={}, queue=Q) for _ in range(jobs)])
    ids = [r.job_id for r in results]
    tokens: dict[str, str] = {}
    while len(tokens) < jobs:
        batch = await conveyor.broker.fetch(Q, 1000, "race", 600_000)
        tokens.update((d.job_id, d.token) for d in batch.deliveries)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2

    async def finish(i: int, job_id: str) -> None:
        await asyncio.sleep(max(start + i * spacing_s - loop.time(), 0))
        assert await conveyor.broker.ack([AckItem(job_id, tokens[job_id], str(i))]) == [True]

    async def wait(i: int, job_id: str) -> tuple[str, object]:
        await asyncio.sleep(max(start + i * spacing_s + rng.uniform(-0.05, 0.05)
                                - loop.time(), 0))
        if i % 2:
            job = await conveyor.wait(job_id, timeout=30)
            return job_id, (str(job.state), job.result)
        r = await api.get(f"/v1/jobs/{job_id}/wait", params={"timeout_s": 30}, timeout=40)
        assert r.status_code == 200
        return job_id, (r.json()["state"], r.json()["result"])

    got = await asyncio.gather(*(wait(i, j) for i, j in enumerate(ids)),
                               *(finish(i, j) for i, j in enumerate(ids)))
    answers = dict(a for a in got if a is not None)
    wrong = {j: answers[j] for i, j in enumerate(ids) if answers[j] != (JobState.SUCCEEDED, i)}
    assert not wrong, f"{len(wrong)} wrong answers, e.g. {list(wrong.items())[:3]}"
