"""The sync client's `wait` / `result` (issue 17): the async client's waiters, driven on the
client's loop thread."""

from __future__ import annotations

import threading

import pytest

from conveyor.brokers.base import AckItem, FailItem
from conveyor.client import Conveyor
from conveyor.errors import JobFailed, WaitTimeout
from conveyor.jobs import JobState


def test_sync_wait_and_result(client: Conveyor) -> None:
    job = client.enqueue("fake", {}, queue="syncw")
    with pytest.raises(WaitTimeout) as late:
        client.wait(job.id, timeout=0.1)
    assert late.value.job.state == JobState.QUEUED
    broker = client.aio.broker

    def finish() -> None:
        batch = client._call(broker.fetch("syncw", 1, "w", 60_000))
        [d] = batch.deliveries
        assert client._call(broker.ack([AckItem(d.job_id, d.token, "[1, 2]")])) == [True]

    timer = threading.Timer(0.2, finish)
    timer.start()
    assert client.result(job.id, timeout=10) == [1, 2]
    timer.join()
    assert client.wait(job.id).state == JobState.SUCCEEDED

    bad = client.enqueue("fake", {}, queue="syncw")
    batch = client._call(broker.fetch("syncw", 1, "w", 60_000))
    [d] = batch.deliveries
    client._call(broker.fail([FailItem(d.job_id, d.token, "nope", "failed")]))
    with pytest.raises(JobFailed) as failed:
        client.result(bad.id, timeout=5)
    assert failed.value.error_code == "nope"
