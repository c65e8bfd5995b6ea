"""Every call the Redis broker sends is bounded by bytes as well as by count: an ack, fail or
enqueue batch is split into script calls of at most `max_call_bytes`, so no request can pass
Redis' limits (`proto-max-bulk-len`: eleven 48 MB results acked together once made Redis
reset the connection, and the worker resent the same batch forever).

Against a redis-server of the test's own, started with the smallest bulk limit Redis allows
(1 MB), so a batch of a few MB shows what a batch of 528 MB did on a default server.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from conveyor.brokers.base import AckItem, FailItem
from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import JobState

Q = "big"
KIB = 1024

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")


def _spawn(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "no", "--protected-mode", "no",
         "--proto-max-bulk-len", "1mb"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    return proc, port


@pytest.fixture
async def small_bulk_redis(tmp_path: Path) -> AsyncIterator[str]:
    """A redis-server refusing any single argument over 1 MB; stopped by its pid."""
    proc, port = _spawn(tmp_path)
    client = Redis(port=port, socket_connect_timeout=1.0)
    try:
        for _ in range(500):
            with contextlib.suppress(RedisError, OSError):
                if await client.ping():
                    break
            await asyncio.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        await client.aclose()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
async def broker(small_bulk_redis: str) -> AsyncIterator[RedisBroker]:
    b = RedisBroker.from_url(small_bulk_redis, key_prefix="t", max_call_bytes=256 * KIB)
    await b.connect()
    try:
        yield b
    finally:
        await b.close()


async def _enqueue(broker: RedisBroker, n: int, payload_bytes: int = 10) -> list[str]:
    client = AsyncConveyor(broker, validate_types=False)
    requests = [JobRequest("t", "p" * payload_bytes, Q, max_attempts=2) for _ in range(n)]
    return [r.job_id for r in await client.enqueue_many(requests)]


async def test_an_enqueue_batch_over_the_bulk_limit_is_split(broker: RedisBroker) -> None:
    ids = await _enqueue(broker, 24, payload_bytes=60 * KIB)  # 1.4 MB in all
    assert len(set(ids)) == 24
    assert (await broker.stats([Q]))[Q][JobState.QUEUED] == 24
    assert (await broker.audit(Q)).ok


async def test_ack_and_fail_batches_over_the_bulk_limit_are_split(broker: RedisBroker) -> None:
    ids = []
    for _ in range(6):  # small enqueue calls: only the outcomes are big
        ids += await _enqueue(broker, 4)
    leased = (await broker.fetch(Q, 24, "w", 60_000)).deliveries
    assert len(leased) == 24
    big = '"' + "r" * (150 * KIB) + '"'
    acks = [AckItem(d.job_id, d.token, big) for d in leased[:8]]  # 1.2 MB of results
    assert await broker.ack(acks) == [True] * 8
    tb = "t" * (64 * KIB)
    fails = [FailItem(d.job_id, d.token, "e", "m" * (16 * KIB), tb) for d in leased[8:]]
    assert await broker.fail(fails) == [JobState.DEAD] * 16  # 1.3 MB of text
    assert (await broker.get(leased[0].job_id)).result == big[1:-1]
    stats = (await broker.stats([Q]))[Q]
    assert (stats[JobState.SUCCEEDED], stats[JobState.DEAD]) == (8, 16)
    assert (await broker.audit(Q)).ok


async def test_one_item_larger_than_a_call_goes_alone(broker: RedisBroker) -> None:
    ids = await _enqueue(broker, 3)
    leased = (await broker.fetch(Q, 3, "w", 60_000)).deliveries
    sizes = [10, 300 * KIB, 10]  # over max_call_bytes, under Redis' own limit
    acks = [AckItem(d.job_id, d.token, '"' + "x" * n + '"') for d, n in zip(leased, sizes,
                                                                          strict=True)]
    assert await broker.ack(acks) == [True] * 3
    assert [len(str((await broker.get(i)).result)) for i in ids] == sizes
