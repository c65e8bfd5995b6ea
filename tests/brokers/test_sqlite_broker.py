"""SQLite-only behaviour: URLs, opening files (good, missing, foreign, newer schema), WAL mode,
the schema version table, data surviving a reopen, the worker registry, wait_for_work."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conveyor.brokers import broker_from_url
from conveyor.brokers.base import WorkerInfo
from conveyor.brokers.sqlite import SqliteBroker, parse_sqlite_url
from conveyor.brokers.sqlite.schema import LATEST
from conveyor.client import AsyncConveyor
from conveyor.errors import BrokerMisconfigured, BrokerUnavailable, ValidationError
from conveyor.jobs import JobState

Q = "sq"


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[SqliteBroker]:
    b = SqliteBroker(tmp_path / "cv.db")
    await b.connect()
    yield b
    await b.close()


def _info(worker_id: str) -> WorkerInfo:
    return WorkerInfo(id=worker_id, host="h", pid=1, queues=[Q], concurrency=2, jobs=[],
                      started_at_ms=1)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///conveyor.db", "conveyor.db"),
        ("sqlite:///data/dir/x.db", "data/dir/x.db"),
        ("sqlite:////var/lib/conveyor.db", "/var/lib/conveyor.db"),
        ("sqlite:///my%20jobs.db?synchronous=full", "my jobs.db"),
    ],
)
def test_urls_name_relative_and_absolute_paths(url: str, path: str) -> None:
    assert parse_sqlite_url(url)[0] == path
    broker = broker_from_url(url)
    assert isinstance(broker, SqliteBroker)
    assert broker.path == path


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite://host/x.db", "sqlite:///:memory:",
            "sqlite:///x.db?synchronous=off"],
)
def test_bad_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValidationError):
        broker_from_url(url)


async def test_a_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    broker = SqliteBroker(tmp_path / "no" / "such" / "dir" / "cv.db")
    with pytest.raises(BrokerUnavailable):
        await broker.connect()
    assert await broker.ping() is False
    await broker.close()


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, just some text " * 200)
    broker = SqliteBroker(path)
    with pytest.raises(BrokerMisconfigured):
        await broker.connect()
    await broker.close()


async def test_calls_before_connect_or_after_close_are_unavailable(tmp_path: Path) -> None:
    broker = SqliteBroker(tmp_path / "cv.db")
    with pytest.raises(BrokerUnavailable):
        await broker.stats([Q])
    await broker.connect()
    assert await broker.ping() is True
    await broker.close()
    assert await broker.ping() is False
    with pytest.raises(BrokerUnavailable):
        await broker.get(f"{Q}:{'0' * 32}")
    await broker.connect()  # a closed broker may connect again
    assert await broker.ping() is True
    await broker.close()


async def test_schema_is_versioned_wal_and_migrated_once(tmp_path: Path) -> None:
    path = tmp_path / "cv.db"
    for _ in range(2):  # a second open finds the schema current and changes nothing
        b = SqliteBroker(path)
        await b.connect()
        await b.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
    conn.close()
    assert versions == list(range(1, LATEST + 1))


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cv.db"
    b = SqliteBroker(path)
    await b.connect()
    await b.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (LATEST + 1,))
    conn.close()
    b = SqliteBroker(path)
    with pytest.raises(BrokerMisconfigured) as err:
        await b.connect()
    assert err.value.details["schema_version"] == LATEST + 1
    await b.close()


async def test_jobs_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "cv.db"
    b = SqliteBroker(path)
    await b.connect()
    job = await AsyncConveyor(b, validate_types=False).enqueue("t", {"n": 1}, queue=Q)
    await b.close()
    b = SqliteBroker(path)
    await b.connect()
    try:
        got = await b.get(job.id)
        assert (got.state, got.payload) == (JobState.QUEUED, {"n": 1})
        batch = await b.fetch(Q, 5, "w", 60_000)
        assert [d.job_id for d in batch.deliveries] == [job.id]
    finally:
        await b.close()


async def test_worker_registry_expires_silent_workers(broker: SqliteBroker) -> None:
    await broker.register_worker(_info("stays"), ttl_s=60)
    await broker.register_worker(_info("fades"), ttl_s=0.05)
    deadline = time.monotonic() + 5
    while len(await broker.workers()) != 1:
        assert time.monotonic() < deadline, "the short-lived registration never expired"
        await asyncio.sleep(0.01)
    (listed,) = await broker.workers()
    assert listed.id == "stays"
    assert listed.last_seen_ms > 0
    await broker.register_worker(_info("stays"), ttl_s=60)  # a refresh, not a second row
    assert [w.id for w in await broker.workers()] == ["stays"]
    await broker.deregister_worker("stays")
    assert await broker.workers() == []


async def test_wait_for_work_ignores_a_paused_queue_until_resumed(broker: SqliteBroker) -> None:
    await broker.pause(Q)
    await AsyncConveyor(broker, validate_types=False).enqueue("t", None, queue=Q)
    started = time.monotonic()
    assert await broker.wait_for_work([Q], 0.2) is False  # queued, but paused: no wake-up
    assert time.monotonic() - started >= 0.15
    waiter = asyncio.create_task(broker.wait_for_work([Q], 5.0))
    await asyncio.sleep(0)
    await broker.resume(Q)
    assert await asyncio.wait_for(waiter, 4.0) is True


async def test_wait_for_work_wakes_for_a_job_due_before_the_timeout(
    broker: SqliteBroker,
) -> None:
    client = AsyncConveyor(broker, validate_types=False)
    await client.enqueue("t", None, queue=Q, delay=3600)  # due long after: no wake-up
    assert await broker.wait_for_work([Q], 0.1) is False
    waiter = asyncio.create_task(broker.wait_for_work([Q], 5.0))
    await asyncio.sleep(0)
    await client.enqueue("t", None, queue=Q, delay=0.2)
    assert await asyncio.wait_for(waiter, 4.0) is True
