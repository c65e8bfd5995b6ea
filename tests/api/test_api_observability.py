"""Observability at the API (issue 18): `oldest_ready_age_s` in the queue listing and page,
`/metrics` with the oldest-ready age, live workers, their slots and busy slots per queue, and
the broker's per-minute series of a queue."""

from __future__ import annotations

import asyncio

import httpx

from conveyor.brokers.base import AckItem, FailItem, WorkerInfo
from conveyor.client import AsyncConveyor
from tests.api.test_api_ops import sample


async def _broker_time_passes(conveyor: AsyncConveyor, ms: int) -> None:
    target = await conveyor.broker.now_ms() + ms
    for _ in range(1000):
        if await conveyor.broker.now_ms() >= target:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the broker clock does not move")


async def _age(api: httpx.AsyncClient, name: str) -> float:
    items = (await api.get("/v1/queues")).json()["items"]
    return float(next(q for q in items if q["name"] == name)["oldest_ready_age_s"])


async def test_queue_listing_and_page_show_the_oldest_ready_age(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    job = (await api.post("/v1/jobs", json={"type": "fake", "queue": "wait"})).json()
    await api.post("/v1/jobs", json={"type": "fake", "queue": "later", "delay_ms": 60_000})
    await _broker_time_passes(conveyor, 60)
    age = await _age(api, "wait")
    assert age >= 0.06
    assert await _age(api, "later") == 0  # not due yet: waits for no worker
    one = (await api.get("/v1/queues/wait")).json()
    assert one["oldest_ready_age_s"] >= age
    # taken by a worker: nothing waits any more
    batch = await conveyor.broker.fetch("wait", 10, "w", 30_000)
    assert [d.job_id for d in batch.deliveries] == [job["id"]]
    assert await _age(api, "wait") == 0


async def test_metrics_export_ages_workers_and_busy_slots(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    for queue in ("qa", "qa", "qb"):
        await api.post("/v1/jobs", json={"type": "fake", "queue": queue})
    batch = await conveyor.broker.fetch("qa", 1, "w-1", 30_000)
    held = [d.job_id for d in batch.deliveries]
    for info in (
        WorkerInfo(id="w-1", host="h", pid=1, queues=["qa", "qb"], concurrency=4, jobs=held,
                   started_at_ms=1),
        WorkerInfo(id="w-2", host="h", pid=2, queues=["qa"], concurrency=2, jobs=[],
                   started_at_ms=1),
    ):
        await conveyor.broker.register_worker(info, ttl_s=30)
    await api.post("/v1/jobs", json={"type": "fake", "queue": "qc"})
    await _broker_time_passes(conveyor, 20)
    text = (await api.get("/metrics")).text
    assert sample(text, "conveyor_queue_workers", queue="qa") == 2
    assert sample(text, "conveyor_queue_workers", queue="qb") == 1
    assert sample(text, "conveyor_queue_workers", queue="qc") == 0  # no live worker
    assert sample(text, "conveyor_queue_worker_slots", queue="qa") == 6
    assert sample(text, "conveyor_queue_busy_slots", queue="qa") == 1
    assert sample(text, "conveyor_queue_busy_slots", queue="qb") == 0
    assert sample(text, "conveyor_queue_oldest_ready_age_seconds", queue="qc") >= 0.02
    assert sample(text, "conveyor_queue_oldest_ready_age_seconds", queue="qa") > 0


async def test_queue_series_counts_outcomes_per_minute(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    ids = [(await api.post("/v1/jobs", json={"type": "fake", "queue": "s"})).json()["id"]
           for _ in range(3)]
    batch = await conveyor.broker.fetch("s", 3, "w", 30_000)
    by_id = {d.job_id: d for d in batch.deliveries}
    assert await conveyor.broker.ack([AckItem(ids[0], by_id[ids[0]].token)]) == [True]
    assert await conveyor.broker.ack([AckItem(ids[1], by_id[ids[1]].token)]) == [True]
    assert await conveyor.broker.fail([FailItem(ids[2], by_id[ids[2]].token, "e", "m")]) == [
        "dead"]
    r = await api.get("/v1/queues/s/series")
    assert r.status_code == 200
    doc = r.json()
    assert doc["step_s"] == 60
    assert len(doc["points"]) == 60
    assert set(doc["points"][0]) == {"at", "succeeded", "failed", "dead"}
    assert doc["points"][0]["at"].endswith(":00Z")
    totals = {k: sum(p[k] for p in doc["points"]) for k in ("succeeded", "failed", "dead")}
    assert totals == {"succeeded": 2, "failed": 0, "dead": 1}
    typed = (await api.get("/v1/queues/s/series", params={"minutes": 5, "type": "fake"})).json()
    assert len(typed["points"]) == 5
    other = (await api.get("/v1/queues/s/series", params={"minutes": 5, "type": "x"})).json()
    assert sum(p["succeeded"] for p in other["points"]) == 0
    for params in ({"minutes": 0}, {"minutes": 10081}, {"type": "a b"}, {"minutes": "x"},
                   {"step_s": 600}, {"step_s": "x"}, {"minutes": 1441, "step_s": 60}):
        bad = await api.get("/v1/queues/s/series", params=params)
        assert bad.status_code == 422, params
        assert bad.json()["error"]["code"] == "validation_error"


async def test_queue_series_per_hour_beyond_a_day(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    job = (await api.post("/v1/jobs", json={"type": "fake", "queue": "sh"})).json()["id"]
    (d,) = (await conveyor.broker.fetch("sh", 1, "w", 30_000)).deliveries
    assert await conveyor.broker.ack([AckItem(job, d.token)]) == [True]
    day = (await api.get("/v1/queues/sh/series", params={"minutes": 1440})).json()
    assert day["step_s"] == 60 and len(day["points"]) == 1440
    week = (await api.get("/v1/queues/sh/series", params={"minutes": 10080})).json()
    assert week["step_s"] == 3600
    assert len(week["points"]) in (168, 169)  # whole hours holding the window's minutes
    assert all(p["at"].endswith(":00:00Z") for p in week["points"])
    assert sum(p["succeeded"] for p in week["points"]) == 1
    hourly = (await api.get("/v1/queues/sh/series",
                            params={"minutes": 60, "step_s": 3600, "type": "fake"})).json()
    assert hourly["step_s"] == 3600 and len(hourly["points"]) in (1, 2)
    assert sum(p["succeeded"] for p in hourly["points"]) == 1
