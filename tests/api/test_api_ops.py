"""Operator routes: queues (counts, pause, resume), the DLQ (list, filter, purge), live
workers, and the Prometheus metrics."""

from __future__ import annotations

import re

import httpx

from conveyor.brokers.base import FailItem, WorkerInfo
from conveyor.client import AsyncConveyor, JobRequest
from tests.support.asgi import error_of

STATES = {"scheduled", "queued", "running", "succeeded", "dead", "cancelled"}


async def make_dead(conveyor: AsyncConveyor, queue: str, codes: list[str]) -> list[str]:
    """Enqueue one `fake` job per code, lease them and fail each for good with that code."""
    await conveyor.enqueue_many([JobRequest("fake", {}, queue)] * len(codes))
    batch = await conveyor.broker.fetch(queue, len(codes), "cvt-worker", 30_000)
    assert len(batch.deliveries) == len(codes)
    states = await conveyor.broker.fail([
        FailItem(d.job_id, d.token, code, f"failed with {code}")
        for d, code in zip(batch.deliveries, codes, strict=True)
    ])
    assert states == ["dead"] * len(codes)
    return [d.job_id for d in batch.deliveries]


async def test_queues_counts_and_pause(api: httpx.AsyncClient) -> None:
    for body in ({"type": "fake", "queue": "qa"}, {"type": "fake", "queue": "qa"},
                 {"type": "fake", "queue": "qb", "delay_ms": 60_000}):
        assert (await api.post("/v1/jobs", json=body)).status_code == 201
    doc = (await api.get("/v1/queues")).json()
    by_name = {q["name"]: q for q in doc["items"]}
    assert set(by_name) == {"qa", "qb"}
    assert set(by_name["qa"]["counts"]) == STATES
    assert by_name["qa"]["counts"]["queued"] == 2
    assert by_name["qb"]["counts"]["scheduled"] == 1
    assert not by_name["qa"]["paused"]

    paused = await api.post("/v1/queues/qa/pause")
    assert paused.status_code == 200
    aged = "oldest_ready_age_s"  # grows between two reads (test_api_observability.py)
    assert {k: v for k, v in paused.json().items() if k != aged} == {
        k: v for k, v in {**by_name["qa"], "paused": True}.items() if k != aged}
    # A paused queue still accepts jobs.
    assert (await api.post("/v1/jobs", json={"type": "fake", "queue": "qa"})).status_code == 201
    listed = {q["name"]: q for q in (await api.get("/v1/queues")).json()["items"]}
    assert listed["qa"]["paused"] and listed["qa"]["counts"]["queued"] == 3
    resumed = await api.post("/v1/queues/qa/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False

    fresh = await api.post("/v1/queues/never-used/pause")
    assert fresh.status_code == 200
    assert fresh.json()["paused"] and sum(fresh.json()["counts"].values()) == 0


async def test_dlq_list_filter_and_purge(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    dead = await make_dead(conveyor, "mail", ["smtp_permanent", "handler_error",
                                              "smtp_permanent"])
    other = await make_dead(conveyor, "reports", ["timeout"])
    live = (await api.post("/v1/jobs", json={"type": "fake", "queue": "mail"})).json()["id"]

    everything = (await api.get("/v1/dlq")).json()
    assert {j["id"] for j in everything["items"]} == {*dead, *other}
    assert all(j["state"] == "dead" for j in everything["items"])
    mail = (await api.get("/v1/dlq", params={"queue": "mail"})).json()
    assert [j["id"] for j in mail["items"]] == sorted(dead, reverse=True)
    first = mail["items"][0]
    assert first["last_error"]["code"] in {"smtp_permanent", "handler_error"}
    assert first["history"][0]["error_code"] == first["last_error"]["code"]

    smtp = (await api.get("/v1/dlq", params={"error_code": "smtp_permanent"})).json()
    assert {j["id"] for j in smtp["items"]} == {dead[0], dead[2]}
    by_type = (await api.get("/v1/dlq", params={"type": "other"})).json()
    assert by_type["items"] == []

    purged = await api.delete(f"/v1/dlq/{dead[1]}")
    assert purged.status_code == 204 and purged.content == b""
    gone = await api.get(f"/v1/jobs/{dead[1]}")
    assert gone.status_code == 404
    again = await api.delete(f"/v1/dlq/{dead[1]}")
    assert again.status_code == 404 and error_of(again)["code"] == "job_not_found"
    not_dead = await api.delete(f"/v1/dlq/{live}")
    assert not_dead.status_code == 404
    assert (await api.get(f"/v1/jobs/{live}")).json()["state"] == "queued"

    redriven = await api.post(f"/v1/jobs/{dead[0]}/retry")
    assert redriven.status_code == 200 and redriven.json()["state"] == "queued"
    left = (await api.get("/v1/dlq", params={"queue": "mail"})).json()
    assert [j["id"] for j in left["items"]] == [dead[2]]


async def test_workers_lists_live_workers(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    assert (await api.get("/v1/workers")).json() == {"items": []}
    info = WorkerInfo(id="w-1", host="box", pid=42, queues=["default"], concurrency=8,
                      jobs=["default:" + "1" * 32], started_at_ms=1_700_000_000_000)
    await conveyor.broker.register_worker(info, ttl_s=30)
    items = (await api.get("/v1/workers")).json()["items"]
    assert len(items) == 1
    worker = items[0]
    assert {k: worker[k] for k in ("id", "host", "pid", "queues", "concurrency", "jobs")} == {
        "id": "w-1", "host": "box", "pid": 42, "queues": ["default"], "concurrency": 8,
        "jobs": ["default:" + "1" * 32]}
    assert worker["started_at"] == "2023-11-14T22:13:20Z"
    assert worker["last_seen_at"].endswith("Z")


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.rpartition("}")[0]))
        if got == labels:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


async def test_metrics(api: httpx.AsyncClient) -> None:
    job = (await api.post("/v1/jobs", json={"type": "fake", "queue": "m"})).json()
    await api.get(f"/v1/jobs/{job['id']}")
    await api.get("/nowhere")
    await api.post("/v1/queues/m/pause")
    r = await api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert sample(text, "conveyor_api_requests_total", method="POST", route="/v1/jobs",
                  status="201") == 1
    assert sample(text, "conveyor_api_requests_total", method="GET", route="/v1/jobs/{id}",
                  status="200") == 1
    assert sample(text, "conveyor_api_requests_total", method="GET", route="unmatched",
                  status="404") == 1
    assert sample(text, "conveyor_api_request_duration_seconds_count", method="POST",
                  route="/v1/jobs") == 1
    assert sample(text, "conveyor_queue_jobs", queue="m", state="queued") == 1
    assert sample(text, "conveyor_queue_paused", queue="m") == 1
    assert sample(text, "conveyor_broker_up") == 1
