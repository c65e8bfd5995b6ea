"""The optional sync enqueue capability (`Broker.sync_enqueuer`): every backend here offers
one, and it answers as `Broker.enqueue` does (called from a thread of its own, as the sync
client calls it)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from conveyor.brokers.base import Broker, SyncEnqueuer
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.errors import ValidationError
from conveyor.jobs import JobSpec, JobState
from tests.brokers.conformance import TYPE, Q, assert_audit_ok

OTHER_Q = "conf-sync-b"


def _enqueuer(broker: Broker) -> SyncEnqueuer:
    enq = broker.sync_enqueuer()
    assert enq is not None, f"{type(broker).__name__} offers no sync enqueuer"
    return enq


def _specs(broker: Broker, *requests: JobRequest) -> list[JobSpec]:
    client = AsyncConveyor(broker, validate_types=False)
    return [client.build_spec(r)[0] for r in requests]


async def test_sync_enqueue_stores_jobs_in_order_across_queues(broker: Broker) -> None:
    enq = _enqueuer(broker)
    try:
        specs = _specs(broker, JobRequest(TYPE, {"n": 1}, Q), JobRequest(TYPE, {"n": 2}, OTHER_Q),
                       JobRequest(TYPE, {"n": 3}, Q, delay=3600))
        results = await asyncio.to_thread(enq.enqueue, specs)
        assert [r.job_id for r in results] == [s.id for s in specs]
        assert all(r.created for r in results)
        assert [r.state for r in results] == [JobState.QUEUED, JobState.QUEUED,
                                              JobState.SCHEDULED]
        jobs = await broker.get_many([s.id for s in specs])
        assert [j.payload if j else None for j in jobs] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert Q in await broker.queues() and OTHER_Q in await broker.queues()
        await assert_audit_ok(broker, Q)
        await assert_audit_ok(broker, OTHER_Q)
    finally:
        enq.close()


async def test_sync_enqueue_keeps_idempotency_keys_as_enqueue_does(broker: Broker) -> None:
    enq = _enqueuer(broker)
    try:
        (spec,) = _specs(broker, JobRequest(TYPE, {"n": 1}, Q, idempotency_key="sync-k"))
        (first,) = await broker.enqueue([spec])
        again = dataclasses.replace(spec, id=_specs(broker, JobRequest(TYPE, None, Q))[0].id)
        (second,) = await asyncio.to_thread(enq.enqueue, [again])
        assert first.created and not second.created
        assert second.job_id == spec.id
        assert second.fingerprint == spec.fingerprint
        assert (await broker.stats([Q]))[Q][JobState.QUEUED] == 1
    finally:
        enq.close()


async def test_sync_enqueue_refuses_a_bad_spec_and_stores_nothing(broker: Broker) -> None:
    enq = _enqueuer(broker)
    try:
        good, bad = _specs(broker, JobRequest(TYPE, None, Q), JobRequest(TYPE, None, Q))
        with pytest.raises(ValidationError):
            await asyncio.to_thread(enq.enqueue, [good, dataclasses.replace(bad, priority=10**6)])
        assert (await broker.get_many([good.id])) == [None]
    finally:
        enq.close()
