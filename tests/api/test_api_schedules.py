"""`/v1/schedules` over HTTP (issue 15): the status codes and shapes the issue lists, 422
`validation_error` with details for every kind of bad definition (nothing stored), 404
`schedule_not_found`, the preview, and the job JSON's `schedule` field.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

BODY: dict[str, Any] = {"cron": "30 2 * * *", "timezone": "America/New_York",
                        "job": {"type": "fake", "queue": "sapi", "payload": {"result": 7}}}


async def test_put_get_list_pause_resume_trigger_runs_delete(api: httpx.AsyncClient) -> None:
    r = await api.put("/v1/schedules/nightly", json=BODY)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "nightly" and created["cron"] == "30 2 * * *"
    assert created["paused"] is False and created["overlap"] == "allow"
    assert created["catch_up"] == "latest" and created["last_run"] is None
    assert created["counts"] == {"fired": 0, "skipped": 0, "missed": 0}
    assert len(created["next_runs"]) == 5 and created["description"]
    assert {"created_at", "updated_at"} <= created.keys()
    again = await api.put("/v1/schedules/nightly", json=BODY)
    assert again.status_code == 200 and again.json() == created  # nothing changed
    assert (await api.get("/v1/schedules/nightly")).json() == created
    listed = (await api.get("/v1/schedules")).json()
    assert [s["name"] for s in listed["items"]] == ["nightly"]
    paused = await api.post("/v1/schedules/nightly/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert paused.json()["next_runs"] == []
    resumed = await api.post("/v1/schedules/nightly/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    trig = await api.post("/v1/schedules/nightly/trigger")
    assert trig.status_code == 201
    job = trig.json()
    assert job["schedule"] == {"name": "nightly", "tick": None}
    assert job["queue"] == "sapi" and job["state"] == "queued"
    assert (await api.get(f"/v1/jobs/{job['id']}")).json()["schedule"] == job["schedule"]
    runs = (await api.get("/v1/schedules/nightly/runs", params={"limit": 10})).json()
    assert [j["id"] for j in runs["items"]] == [job["id"]] and runs["next_cursor"] is None
    last = (await api.get("/v1/schedules/nightly")).json()["last_run"]
    assert last == {"tick": None, "job_id": job["id"], "state": "queued"}
    assert (await api.delete("/v1/schedules/nightly")).status_code == 204
    gone = await api.get("/v1/schedules/nightly")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "schedule_not_found"
    for method, path in (("delete", ""), ("post", "/pause"), ("post", "/resume"),
                         ("post", "/trigger"), ("get", "/runs")):
        r = await api.request(method.upper(), f"/v1/schedules/nightly{path}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "schedule_not_found"


async def test_other_jobs_read_schedule_null(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/jobs", json={"type": "fake", "payload": {}})
    assert r.status_code == 201 and r.json()["schedule"] is None


@pytest.mark.parametrize(("body", "loc"), [
    ({**BODY, "cron": "61 * * * *"}, "cron"),
    ({**BODY, "cron": "* * *"}, "cron"),
    ({**BODY, "timezone": "Mars/Olympus"}, "timezone"),
    ({**BODY, "every_s": 5}, None),  # both
    ({"job": BODY["job"]}, None),  # neither
    ({"every_s": 0.5, "job": BODY["job"]}, "every_s"),
    ({"every_s": 60, "job": BODY["job"], "start_at": "2027-01-02T00:00:00Z",
      "end_at": "2027-01-01T00:00:00Z"}, None),
    ({"every_s": 60, "job": {"type": "no.such.type"}}, "type"),
    ({"every_s": 60, "job": {"type": "fake", "payload": {"duration_ms": "x"}}}, "payload"),
    ({"every_s": 60, "job": {"type": "conveyor.webhook"}}, "type"),
    ({"every_s": 60, "job": BODY["job"], "name": "other"}, "name"),
    ({"every_s": "60", "job": BODY["job"]}, "every_s"),
    ({"every_s": 60, "job": BODY["job"], "start_at": "2027-01-01T00:00:00"}, "start_at"),
])
async def test_bad_definitions_are_422_and_store_nothing(
    api: httpx.AsyncClient, body: dict[str, Any], loc: str | None,
) -> None:
    r = await api.put("/v1/schedules/bad", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error" and err["details"]
    if loc is not None:
        assert any(loc in d["loc"] for d in err["details"]), err
    assert (await api.get("/v1/schedules/bad")).status_code == 404
    assert (await api.get("/v1/schedules")).json()["items"] == []


async def test_preview_follows_the_dst_rules(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/schedules/preview", json={
        "cron": "30 2 * * *", "timezone": "America/New_York",
        "after": "2027-03-13T12:00:00Z", "count": 2})
    assert r.status_code == 200, r.text
    # 02:30 does not exist on 2027-03-14: it fires at 03:00 EDT (07:00Z)
    assert r.json() == {"runs": ["2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z"]}
    r = await api.post("/v1/schedules/preview", json={
        "cron": "30 1 * * *", "timezone": "America/New_York",
        "after": "2027-11-06T12:00:00Z", "count": 2})
    assert r.json() == {"runs": ["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"]}
    r = await api.post("/v1/schedules/preview", json={"every_s": 90})
    runs = r.json()["runs"]
    assert r.status_code == 200 and len(runs) == 5
    for bad in ({"every_s": 90, "count": 0}, {"every_s": 90, "count": 101},
                {"cron": "x"}, {}, {"every_s": 90, "timezone": "Nowhere"}):
        r = await api.post("/v1/schedules/preview", json=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


async def test_list_is_paged(api: httpx.AsyncClient) -> None:
    for i in range(5):
        body = {"every_s": 60 + i, "job": BODY["job"]}
        assert (await api.put(f"/v1/schedules/p{i}", json=body)).status_code == 201
    names: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/schedules", params=params)).json()
        names += [s["name"] for s in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert names == [f"p{i}" for i in range(5)]


async def test_metrics_count_ticks_and_the_lateness_of_the_last_run(
    api: httpx.AsyncClient, conveyor: Any,
) -> None:
    body = {"every_s": 1, "job": {"type": "fake", "queue": "smet"}}
    assert (await api.put("/v1/schedules/tick1", json=body)).status_code == 201
    assert (await api.put("/v1/schedules/idle", json={**body, "paused": True})).status_code == 201
    fired = await conveyor.schedules.fire_due("smet")  # as a worker's maintenance would
    first = next(j for o in fired for j in o.job_ids)
    tick = (await conveyor.get(first)).schedule.tick.timestamp() * 1000
    while await conveyor.broker.now_ms() < tick:  # noqa: ASYNC110  (the broker clock)
        await asyncio.sleep(0.02)
    batch = await conveyor.broker.fetch("smet", 1, "cvt-metrics", 30_000)  # it starts
    assert [d.job_id for d in batch.deliveries] == [first]
    text = (await api.get("/metrics")).text
    fired_line = next(line for line in text.splitlines() if line.startswith(
        'conveyor_schedule_ticks_total{outcome="fired",schedule="tick1"}'))
    assert float(fired_line.split()[-1]) >= 1
    assert 'conveyor_schedule_ticks_total{outcome="missed",schedule="tick1"} 0.0' in text
    assert 'conveyor_schedule_paused{schedule="idle"} 1.0' in text
    assert 'conveyor_schedule_paused{schedule="tick1"} 0.0' in text
    late = next(line for line in text.splitlines()
                if line.startswith('conveyor_schedule_lateness_seconds{schedule="tick1"}'))
    assert float(late.split()[-1]) >= 0
