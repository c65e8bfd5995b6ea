"""The waiter race of issue 17 with half the waits by HTTP: jobs finishing 1 ms apart, each
waited on from a random moment between 50 ms before and 50 ms after its finish, half by the
client's `wait`, half by `GET /v1/jobs/{id}/wait` (long poll), all in one process: no
timeout, no wrong result, and a bounded number of Redis connections (the waiting client's,
counted by `CLIENT LIST` under its own client name, sampled through the run). 600 jobs in
the normal suite, the issue's 10,000 behind the `chaos` marker."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import redis.asyncio as aioredis

from conveyor.brokers.base import AckItem
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.settings import Settings
from conveyor.web import create_app
from tests.chaos.chaos_support import Figures, Scale
from tests.support.asgi import serve
from tests.support.env import REDIS_URL

Q = "race"
#: the waiting client's connections: one follower's block, its log reads, the batched job
#: reads, the API's start-up look (every one of 10,000 waits once held one: 503s at 3,000)
MAX_CONNECTIONS = 8


async def _count(redis: aioredis.Redis, name: str) -> int:
    return sum(1 for c in await redis.client_list() if c.get("name") == name)


async def test_waiter_race(main_broker: RedisBroker, prefix: str, figures: Figures,
                           scale: Scale) -> None:
    jobs, spacing_s = scale.of(600, 10_000), 0.001
    name = f"{prefix}-waiters"
    sep = "&" if "?" in REDIS_URL else "?"
    waiting = RedisBroker.from_url(f"{REDIS_URL}{sep}client_name={name}", key_prefix=prefix)
    client = AsyncConveyor(waiting, validate_types=False)
    await client.connect()
    app = create_app(client, Settings(broker_url="redis://unused", key_prefix=prefix))
    rng = random.Random(17)
    results = []
    for start in range(0, jobs, 1000):
        results += await main_broker.enqueue(
            [client.build_spec(JobRequest(type="race.task", payload=i, queue=Q))[0]
             for i in range(start, min(start + 1000, jobs))])
    ids = [r.job_id for r in results]
    tokens: dict[str, str] = {}
    while len(tokens) < jobs:
        batch = await main_broker.fetch(Q, 1000, "race", 3_600_000)
        tokens.update((d.job_id, d.token) for d in batch.deliveries)
    loop = asyncio.get_running_loop()
    admin = aioredis.Redis.from_url(REDIS_URL)
    peak = 0
    sampling = asyncio.Event()

    async def sample() -> None:
        """Stopped by `sampling`, never by cancelling it: a cancel that lands as a redis-py
        command's write completes is lost on Python 3.11 (its `asyncio.wait_for`), and the
        sampler then ran for ever: the race's "hang" (docs/decisions.md, issue 17)."""
        nonlocal peak
        while not sampling.is_set():
            peak = max(peak, await _count(admin, name))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sampling.wait(), 0.05)

    sampler: asyncio.Task[None] | None = None
    try:
        async with serve(app, timeout_s=60) as http:
            begin = loop.time() + 0.5

            async def finish_all() -> None:
                """Job i finishes at begin + i * spacing: those due together share one ack."""
                i = 0
                while i < len(ids):
                    await asyncio.sleep(max(begin + i * spacing_s - loop.time(), 0))
                    due = [j for j in range(i, len(ids))
                           if begin + j * spacing_s <= loop.time()] or [i]
                    items = [AckItem(ids[j], tokens[ids[j]], str(j)) for j in due]
                    assert await main_broker.ack(items) == [True] * len(items)
                    i = due[-1] + 1

            async def wait(i: int, job_id: str) -> tuple[str, object]:
                await asyncio.sleep(max(begin + i * spacing_s + rng.uniform(-0.05, 0.05)
                                        - loop.time(), 0))
                if i % 2:
                    job = await client.wait(job_id, timeout=30)
                    return job_id, (str(job.state), job.result)
                r = await http.get(f"/v1/jobs/{job_id}/wait", params={"timeout_s": 30})
                assert r.status_code == 200, r.text
                return job_id, (r.json()["state"], r.json()["result"])

            sampler = loop.create_task(sample())
            t0 = time.monotonic()
            got = await asyncio.gather(*(wait(i, j) for i, j in enumerate(ids)),
                                       finish_all())
            elapsed = time.monotonic() - t0
            sampling.set()
            await sampler
            peak = max(peak, await _count(admin, name))
    finally:
        sampling.set()  # also when a wait failed: the sampler ends by itself
        if sampler is not None:
            await asyncio.gather(sampler, return_exceptions=True)
        await client.close()
        await admin.aclose()
    answers = dict(a for a in got if isinstance(a, tuple))
    wrong = {j: answers[j] for i, j in enumerate(ids) if answers[j] != ("succeeded", i)}
    figures.emit("waiter_race", jobs=jobs, wrong=len(wrong), elapsed_s=round(elapsed, 2),
                 redis_connections=peak)
    assert not wrong, f"{len(wrong)} wrong answers, e.g. {list(wrong.items())[:3]}"
    assert 0 < peak <= MAX_CONNECTIONS, f"{peak} Redis connections"
