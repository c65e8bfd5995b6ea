"""Several processes share one SQLite file: they never lease the same job, and a job written
by one process wakes a worker waiting in another (no shared memory: `PRAGMA data_version`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import JobState

Q = "shared"
JOBS = 1500

# Says it is ready (a file), waits for the go file so the processes start together, then
# fetches and acks until the queue is empty; prints the ids it was handed.
FETCHER = """
import asyncio, json, os, sys, time
from conveyor.brokers.base import AckItem
from conveyor.brokers.sqlite import SqliteBroker

async def main(path, go, name):
    broker = SqliteBroker(path)
    await broker.connect()
    open(go + "." + name, "w").close()  # ready
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    got = []
    while True:
        batch = await broker.fetch("shared", 7, name, 60_000)
        if not batch.deliveries:
            break
        got += [d.job_id for d in batch.deliveries]
        acks = await broker.ack([AckItem(d.job_id, d.token) for d in batch.deliveries])
        assert all(acks), acks
    await broker.close()
    print(json.dumps(got))

asyncio.run(main(*sys.argv[1:]))
"""

ENQUEUER = """
import asyncio, sys
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor

async def main(path):
    broker = SqliteBroker(path)
    await broker.connect()
    job = await AsyncConveyor(broker, validate_types=False).enqueue("t", None, queue="shared")
    await broker.close()
    print(job.id)

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[SqliteBroker]:
    b = SqliteBroker(tmp_path / "shared.db")
    await b.connect()
    yield b
    await b.close()


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


async def _finish(proc: subprocess.Popen[str], timeout_s: float = 60) -> str:
    out, err = await asyncio.to_thread(proc.communicate, timeout=timeout_s)
    assert proc.returncode == 0, err
    return out


async def test_processes_sharing_a_file_never_get_the_same_job(
    broker: SqliteBroker, tmp_path: Path
) -> None:
    client = AsyncConveyor(broker, validate_types=False)
    results = await client.enqueue_many(JobRequest("t", {"n": i}, Q) for i in range(JOBS))
    enqueued = {r.job_id for r in results}
    go = tmp_path / "go"
    procs = [_spawn(FETCHER, broker.path, str(go), f"p{n}") for n in range(3)]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"go.p{n}").exists() for n in range(3)):
        assert time.monotonic() < deadline, "fetcher processes did not start"
        await asyncio.sleep(0.01)
    go.touch()
    per_process = [json.loads(await _finish(p)) for p in procs]

    delivered = [job_id for got in per_process for job_id in got]
    assert len(delivered) == len(set(delivered)) == JOBS, "a job was delivered twice"
    assert set(delivered) == enqueued
    assert sum(1 for got in per_process if got) >= 2, "one process did all the work"
    assert (await broker.stats([Q]))[Q][JobState.SUCCEEDED] == JOBS
    assert (await broker.audit(Q)).ok


async def test_a_job_from_another_process_wakes_a_waiting_worker(broker: SqliteBroker) -> None:
    assert await broker.wait_for_work([Q], 0.05) is False
    waiter = asyncio.create_task(broker.wait_for_work([Q], 20.0))
    started = time.monotonic()
    job_id = (await _finish(_spawn(ENQUEUER, broker.path))).strip()
    assert await asyncio.wait_for(waiter, 15.0) is True
    assert time.monotonic() - started < 15.0
    (d,) = (await broker.fetch(Q, 5, "w", 60_000)).deliveries
    assert d.job_id == job_id
