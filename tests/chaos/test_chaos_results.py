"""Fault suite, scenario 10: oversized results mixed into a loaded queue, on a redis-server the
test owns with the smallest request limit Redis allows (`client-query-buffer-limit 1mb`: a
larger request gets the connection reset, as an 11 x 48 MB ack does on a default server).

Most results are small, a quarter are large but under the workers' cap (so batches of them
exceed the server's limit and must be split: a first wave of large jobs that all finish
together makes sure of it), a few are over the cap. Every healthy job must
succeed exactly once, as if nothing were there; every oversized one ends DEAD with
`result_too_large` after one attempt; nothing wedges and no lease expires."""

from __future__ import annotations

import asyncio
import random
import time

from conveyor.brokers.redis import RedisBroker
from conveyor.client import JobRequest
from conveyor.jobs import JobState
from tests.chaos.chaos_support import (
    QUEUE,
    WORK_TYPE,
    Figures,
    Scale,
    Workers,
    WorkerSpec,
    wait_drained,
)
from tests.chaos.ledger import Ledger
from tests.chaos.reconcile import load_jobs, reconcile
from tests.chaos.test_chaos_redis import own_client
from tests.support.redis_server import NO_PERSISTENCE, StartRedis
from tests.support.typed import as_dict

CAP = 256 * 1024
KINDS = ("small", "large", "over")
SHARES = (70, 25, 5)


def _pad(kind: str, rng: random.Random) -> int:
    if kind == "small":
        return rng.randint(0, 2_000)
    if kind == "large":
        return rng.randint(100_000, 200_000)
    return rng.randint(CAP + 1, 2 * CAP)


async def test_oversized_results_mixed_into_a_loaded_queue(
    scale: Scale, redis_servers: StartRedis, workers: Workers, prefix: str, ledger: Ledger,
    figures: Figures,
) -> None:
    rng = random.Random(10)
    server = await redis_servers(
        "redis-small-requests", (*NO_PERSISTENCE, "--client-query-buffer-limit", "1mb")
    )
    concurrency, size = 12, scale.of(2, 3)
    spec = WorkerSpec(broker_url=server.url, prefix=prefix, ledger=ledger.path,
                      concurrency=concurrency, lease_s=2.0,
                      extra_env=(("CONVEYOR_MAX_RESULT_BYTES", str(CAP)),))
    wave = concurrency * size  # leased together, done together: one ack batch of ~2 MB
    total = wave + scale.of(400, 3000)
    kinds = ["large"] * wave + rng.choices(KINDS, weights=SHARES, k=total - wave)
    pads = [_pad(kind, rng) for kind in kinds]
    lengths = [100] * wave + [rng.randint(1, 20) for _ in range(total - wave)]
    async with own_client(server.url, prefix) as client:
        pool = await asyncio.gather(*(workers.start(spec) for _ in range(size)))
        started = time.monotonic()
        results = await client.enqueue_many(
            JobRequest(WORK_TYPE, {"ms": ms, "pad": pad}, QUEUE, max_attempts=3)
            for ms, pad in zip(lengths, pads, strict=True)
        )
        ids = [r.job_id for r in results]
        await wait_drained(client, total, timeout_s=scale.of(90.0, 600.0))
        elapsed = time.monotonic() - started

        runs = ledger.by_job()
        rec = await reconcile(client.broker, QUEUE, ids, runs)
        assert isinstance(client.broker, RedisBroker)
        loaded = await load_jobs(client.broker, ids)
        jobs = {job_id: entry[0] for job_id, entry in loaded.items() if entry is not None}
    splits = sum(len(w.events("outcome_batch_refused")) for w in pool)
    over = [i for i, kind in enumerate(kinds) if kind == "over"]
    figures.emit(
        "10 oversized results in a loaded queue", **rec.figures(), faults=len(over),
        large_results=kinds.count("large"), refused_batches_split=splits,
        result_cap_bytes=CAP, seconds=round(elapsed, 1), recover_max_s=None,
    )
    rec.assert_ok()
    assert rec.duplicated == [] and rec.lease_expiries == 0
    for i, job_id in enumerate(ids):
        job = jobs[job_id]
        if kinds[i] == "over":
            assert (job.state, job.attempts) == (JobState.DEAD, 1), job.last_error
            assert job.last_error is not None and job.last_error.code == "result_too_large"
            assert job.result is None
        else:
            assert (job.state, job.attempts) == (JobState.SUCCEEDED, 1), job.last_error
            pad = as_dict(job.result).get("pad", "")
            assert isinstance(pad, str) and len(pad) == pads[i]
    assert rec.succeeded == total - len(over) and rec.dead == len(over)
    assert splits >= 1, "no batch went over the server's limit: the scenario proved nothing"
    for worker in pool:
        assert worker.error_lines() == [], worker.logs()
