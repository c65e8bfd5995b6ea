"""The SQLite audit really can fail, damaged rows raise CorruptJob, and purged jobs leave no
rows behind: the SQLite twins of the conformance tests marked `backend("redis")`, which damage
the store through its own client."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conveyor.brokers.base import AckItem, FailItem
from conveyor.brokers.sqlite import SqliteBroker
from conveyor.client import AsyncConveyor
from conveyor.errors import CorruptJob
from conveyor.ids import split_job_id
from conveyor.jobs import JobState

Q = "dmg"


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[SqliteBroker]:
    b = SqliteBroker(tmp_path / "cv.db")
    await b.connect()
    yield b
    await b.close()


@contextmanager
def raw(broker: SqliteBroker) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(broker.path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def _set(broker: SqliteBroker, job_id: str, column: str, value: object) -> None:
    queue, uid = split_job_id(job_id)
    with raw(broker) as conn:
        conn.execute(f"UPDATE jobs SET {column} = ? WHERE queue = ? AND uid = ?",
                     (value, queue, uid))


async def _enqueue(broker: SqliteBroker, payload: object = None) -> str:
    return (await AsyncConveyor(broker, validate_types=False).enqueue("t", payload, queue=Q)).id


async def test_audit_reports_a_row_in_no_known_state(broker: SqliteBroker) -> None:
    job_id = await _enqueue(broker)
    _set(broker, job_id, "state", "zombie")
    report = await broker.audit(Q)
    assert report.orphans == [job_id]
    assert not report.ok


async def test_audit_reports_a_score_that_disagrees_with_the_state(broker: SqliteBroker) -> None:
    job_id = await _enqueue(broker)
    _set(broker, job_id, "state", "running")  # queued score, no token: not a real lease
    report = await broker.audit(Q)
    assert report.mismatched == [job_id]
    assert not report.ok


async def test_audit_reports_a_running_job_without_a_token(broker: SqliteBroker) -> None:
    job_id = await _enqueue(broker)
    await broker.fetch(Q, 1, "w", 60_000)
    assert (await broker.audit(Q)).ok
    _set(broker, job_id, "token", "")
    report = await broker.audit(Q)
    assert report.mismatched == [job_id]


async def test_audit_stays_in_its_queue(broker: SqliteBroker) -> None:
    job_id = await _enqueue(broker)
    _set(broker, job_id, "state", "zombie")
    report = await broker.audit("other-queue")
    assert report.ok and report.jobs_seen == 0


@pytest.mark.parametrize(
    ("column", "garbage"),
    [("payload", "{not json"), ("state", "zombie"), ("created_ms", "yesterday"),
     ("history", "}{\n"), ("timeout_ms", "soon"), ("max_attempts", 2.5)],
)
async def test_corrupt_row_raises_corrupt_job(
    broker: SqliteBroker, column: str, garbage: object
) -> None:
    job_id = await _enqueue(broker, {"fine": True})
    _set(broker, job_id, column, garbage)
    with pytest.raises(CorruptJob) as err:
        await broker.get(job_id)
    assert err.value.details == {"job_id": job_id}


async def test_purged_jobs_leave_no_rows_behind(tmp_path: Path) -> None:
    broker = SqliteBroker(tmp_path / "cv.db", retention_s=0.0, dlq_retention_s=0.0)
    await broker.connect()
    try:
        client = AsyncConveyor(broker, validate_types=False)
        for n in range(3):
            await client.enqueue("t", n, queue=Q, idempotency_key=f"key-{n}", max_attempts=1)
        for n in range(3):
            (d,) = (await broker.fetch(Q, 1, "w", 60_000)).deliveries
            if n == 0:
                assert await broker.ack([AckItem(d.job_id, d.token)]) == [True]
            else:
                assert await broker.fail([FailItem(d.job_id, d.token, "e", "m")]) == [
                    JobState.DEAD
                ]
        cancelled = await client.enqueue("t", None, queue=Q, idempotency_key="key-c")
        await broker.cancel(cancelled.id)
        assert await broker.expire_finished(Q) == 4
        with raw(broker) as conn:
            assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
        again = await client.enqueue("t", 0, queue=Q, idempotency_key="key-0", max_attempts=1)
        assert again.state == JobState.QUEUED  # the key went with its job
        assert (await broker.audit(Q)).ok
    finally:
        await broker.close()


async def test_audit_reports_a_row_whose_score_cannot_be_computed(broker: SqliteBroker) -> None:
    good = await _enqueue(broker)
    job_id = await _enqueue(broker)
    _set(broker, job_id, "priority", "high")
    report = await broker.audit(Q)  # it raised TypeError on the text priority
    assert report.mismatched == [job_id] and good not in report.mismatched
