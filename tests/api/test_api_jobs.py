"""`/v1/jobs`: enqueue (one and batch), idempotency, read, list with cursors, retry, cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from conveyor.brokers.base import LeaseRef
from conveyor.client import AsyncConveyor
from tests.api.api_support import locs
from tests.support.asgi import error_of
from tests.support.keys import prefix_keys

JOB_KEYS = {
    "id", "type", "queue", "payload", "state", "priority", "attempts", "max_attempts",
    "created_at", "run_at", "started_at", "finished_at", "result", "result_truncated",
    "result_preview", "last_error", "history", "idempotency_key", "timeout_s", "worker",
    "cancel_requested", "cancel_requested_by", "progress", "schedule",
    "limit_key",
}


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text  # RFC 3339, always UTC, always spelled the same way
    return datetime.fromisoformat(text)


async def test_enqueue_returns_201_and_the_job(enqueue_api: httpx.AsyncClient) -> None:
    r = await enqueue_api.post("/v1/jobs", json={
        "type": "fake", "payload": {"result": "hi"}, "queue": "emails", "priority": 5,
        "max_attempts": 4, "timeout_s": 2.5,
    })
    assert r.status_code == 201, r.text
    job = r.json()
    assert set(job) == JOB_KEYS
    assert job["id"].startswith("emails:")
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["type"], job["queue"], job["state"]) == ("fake", "emails", "queued")
    assert (job["priority"], job["max_attempts"], job["timeout_s"]) == (5, 4, 2.5)
    assert job["payload"]["result"] == "hi"
    assert (job["attempts"], job["history"], job["last_error"]) == (0, [], None)
    created = parse_time(job["created_at"])
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)
    assert parse_time(job["run_at"]) == created

    got = await enqueue_api.get(f"/v1/jobs/{job['id']}")
    assert got.status_code == 200
    assert got.json() == job


async def test_type_defaults_apply(enqueue_api: httpx.AsyncClient) -> None:
    r = await enqueue_api.post("/v1/jobs", json={"type": "fake"})
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["queue"], job["priority"], job["max_attempts"]) == ("default", 0, 5)
    assert job["payload"] == {"duration_ms": 0, "fail_times": 0, "permanent": False,
                              "result": None}


async def test_delay_and_run_at_schedule_the_job(enqueue_api: httpx.AsyncClient) -> None:
    delayed = (await enqueue_api.post("/v1/jobs", json={"type": "fake", "delay_ms": 60_000}))
    assert delayed.status_code == 201, delayed.text
    job = delayed.json()
    assert job["state"] == "scheduled"
    wait = parse_time(job["run_at"]) - parse_time(job["created_at"])
    assert timedelta(seconds=59) <= wait <= timedelta(seconds=60)

    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    local = at.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    zoned = at.astimezone(timezone(timedelta(hours=2))).isoformat()
    for text in (zoned, local):
        r = await enqueue_api.post("/v1/jobs", json={"type": "fake", "run_at": text})
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "scheduled"
        assert parse_time(r.json()["run_at"]) == at


async def test_idempotency_key_in_body_or_header(
    enqueue_api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    body: dict[str, Any] = {"type": "fake", "payload": {"result": 1}, "idempotency_key": "k-1"}
    first = await enqueue_api.post("/v1/jobs", json=body)
    assert first.status_code == 201, first.text
    job_id = first.json()["id"]
    assert first.json()["idempotency_key"] == "k-1"

    again = await enqueue_api.post("/v1/jobs", json=body)
    assert (again.status_code, again.json()["id"]) == (200, job_id)
    by_header = await enqueue_api.post(
        "/v1/jobs", json={"type": "fake", "payload": {"result": 1}},
        headers={"Idempotency-Key": "k-1"},
    )
    assert (by_header.status_code, by_header.json()["id"]) == (200, job_id)
    both = await enqueue_api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    assert (both.status_code, both.json()["id"]) == (200, job_id)

    other_body = await enqueue_api.post(
        "/v1/jobs", json={**body, "payload": {"result": 2}}
    )
    assert other_body.status_code == 409
    err = error_of(other_body)
    assert err["code"] == "idempotency_conflict"
    assert err["details"] == {"job_id": job_id}

    mismatch = await enqueue_api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k-2"})
    assert mismatch.status_code == 409  # two keys: each valid, together a conflict
    assert error_of(mismatch)["code"] == "idempotency_conflict"
    assert locs(mismatch) == [["header", "Idempotency-Key"]]
    bad_header = await enqueue_api.post(
        "/v1/jobs", json={"type": "fake"}, headers={"Idempotency-Key": "a\tb"}
    )
    assert bad_header.status_code == 422
    assert locs(bad_header) == [["header", "Idempotency-Key"]]

    assert (await conveyor.stats())["default"]["queued"] == 1


async def test_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    missing = "default:" + "0" * 32
    for r in (await api.get(f"/v1/jobs/{missing}"),
              await api.post(f"/v1/jobs/{missing}/retry"),
              await api.post(f"/v1/jobs/{missing}/cancel")):
        assert r.status_code == 404
        err = error_of(r)
        assert err["code"] == "job_not_found"
        assert err["details"] == {"job_id": missing}


async def test_cancel_then_retry(api: httpx.AsyncClient) -> None:
    job = (await api.post("/v1/jobs", json={"type": "fake", "delay_ms": 60_000})).json()
    retry_early = await api.post(f"/v1/jobs/{job['id']}/retry")
    assert retry_early.status_code == 409
    assert error_of(retry_early)["code"] == "invalid_state"

    cancelled = await api.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    again = await api.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert error_of(again)["details"]["state"] == "cancelled"

    retried = await api.post(f"/v1/jobs/{job['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "queued"
    assert (await api.get(f"/v1/jobs/{job['id']}")).json()["state"] == "queued"


async def test_list_pages_newest_first_with_filters(api: httpx.AsyncClient) -> None:
    ids = []
    for i in range(7):
        r = await api.post("/v1/jobs", json={
            "type": "fake", "queue": "qa" if i % 2 else "qb",
            **({"delay_ms": 60_000} if i == 3 else {}),
        })
        assert r.status_code == 201
        ids.append(r.json()["id"])

    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await api.get("/v1/jobs", params=params)
        assert page.status_code == 200, page.text
        doc = page.json()
        assert set(doc) == {"items", "next_cursor"}
        assert len(doc["items"]) <= 3
        seen += [j["id"] for j in doc["items"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    newest_first = sorted(ids, key=lambda i: i.split(":")[1], reverse=True)
    assert seen == newest_first

    qa = (await api.get("/v1/jobs", params={"queue": "qa"})).json()
    assert [j["id"] for j in qa["items"]] == [i for i in newest_first if i.startswith("qa:")]
    scheduled = (await api.get("/v1/jobs", params={"state": "scheduled"})).json()
    assert [j["id"] for j in scheduled["items"]] == [ids[3]]
    none = (await api.get("/v1/jobs", params={"type": "other"})).json()
    assert none["items"] == []


async def test_list_refuses_bad_parameters(api: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 1001}, ["query", "limit"]),
        ({"limit": "ten"}, ["query", "limit"]),
        ({"state": "sleeping"}, ["query", "state"]),
        ({"queue": "no spaces"}, ["query", "queue"]),
        ({"cursor": "not-a-cursor"}, ["query", "cursor"]),
    ]
    for params, loc in cases:
        r = await api.get("/v1/jobs", params=params)
        assert r.status_code == 422, (params, r.text)
        assert error_of(r)["code"] == "validation_error"
        assert locs(r) == [loc], params


async def test_batch_enqueues_all_in_order(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    jobs = [{"type": "fake", "payload": {"result": i}, "queue": f"q{i % 2}"} for i in range(5)]
    r = await api.post("/v1/jobs/batch", json={"jobs": jobs})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["created"] == [True] * 5 and doc["conflicts"] == []
    assert [j["payload"]["result"] for j in doc["jobs"]] == list(range(5))
    for job in doc["jobs"]:
        assert set(job) == JOB_KEYS
        stored = await api.get(f"/v1/jobs/{job['id']}")
        assert stored.json() == job
    stats = await conveyor.stats()
    assert stats["q0"]["queued"] + stats["q1"]["queued"] == 5


async def test_batch_is_all_or_nothing(api: httpx.AsyncClient, prefix: str) -> None:
    jobs: list[dict[str, Any]] = [
        {"type": "fake"},
        {"type": "no.such.type"},
        {"type": "fake", "payload": {"permanent": "yes"}},
        {"type": "fake", "payload": {"duration_ms": -1}},
    ]
    r = await api.post("/v1/jobs/batch", json={"jobs": jobs})
    assert r.status_code == 422, r.text
    err = error_of(r)
    assert err["code"] == "validation_error"
    assert "3 of 4" in err["message"]
    assert [(d["index"], d["loc"], d["type"]) for d in err["details"]] == [
        (1, ["body", "jobs", 1, "type"], "unknown_job_type"),
        (2, ["body", "jobs", 2, "payload", "permanent"], "bool_type"),
        (3, ["body", "jobs", 3, "payload", "duration_ms"], "greater_than_equal"),
    ]
    schema_error = await api.post("/v1/jobs/batch", json={"jobs": [{"type": "fake"},
                                                                  {"type": "fake", "x": 1}]})
    assert schema_error.status_code == 422
    assert locs(schema_error) == [["body", "jobs", 1, "x"]]
    assert await prefix_keys(prefix) == []


async def test_batch_size_limits(api: httpx.AsyncClient, prefix: str) -> None:
    empty = await api.post("/v1/jobs/batch", json={"jobs": []})
    assert empty.status_code == 422 and locs(empty) == [["body", "jobs"]]
    too_many = await api.post("/v1/jobs/batch", json={"jobs": [{"type": "fake"}] * 1001})
    assert too_many.status_code == 422 and locs(too_many) == [["body", "jobs"]]
    assert await prefix_keys(prefix) == []
    full = await api.post("/v1/jobs/batch", json={"jobs": [{"type": "fake"}] * 1000})
    assert full.status_code == 201
    assert len(full.json()["jobs"]) == 1000


async def test_batch_idempotency_hits_and_conflicts(api: httpx.AsyncClient) -> None:
    first = await api.post("/v1/jobs", json={"type": "fake", "idempotency_key": "a"})
    assert first.status_code == 201
    r = await api.post("/v1/jobs/batch", json={"jobs": [
        {"type": "fake", "idempotency_key": "a"},
        {"type": "fake", "idempotency_key": "a", "priority": 9},
        {"type": "fake", "idempotency_key": "b"},
    ]})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["created"] == [False, False, True]
    assert doc["jobs"][0]["id"] == doc["jobs"][1]["id"] == first.json()["id"]
    assert [(c["index"], c["job_id"]) for c in doc["conflicts"]] == [(1, first.json()["id"])]

    replay = await api.post("/v1/jobs/batch", json={"jobs": [
        {"type": "fake", "idempotency_key": "b"}]})
    assert replay.status_code == 200
    assert replay.json()["jobs"][0]["id"] == doc["jobs"][2]["id"]


async def test_cancel_of_a_running_job_is_accepted_with_202(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    """The job stays running with `cancel_requested`, until its worker (here: the broker's
    own calls, as a worker makes them) stops it; then it reads CANCELLED, by `api`."""
    job = (await api.post("/v1/jobs", json={"type": "fake"})).json()
    (d,) = (await conveyor.broker.fetch("default", 1, "w-api", 60_000)).deliveries
    asked = await api.post(f"/v1/jobs/{job['id']}/cancel")
    assert asked.status_code == 202, asked.text
    body = asked.json()
    assert set(body) == JOB_KEYS
    assert (body["state"], body["cancel_requested"], body["cancel_requested_by"],
            body["worker"]) == ("running", True, "api", "w-api")
    again = await api.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 202 and again.json()["cancel_requested"]

    reply = await conveyor.broker.heartbeat([LeaseRef(d.job_id, d.token)], 60_000)
    assert reply.cancel_requested == {d.job_id: "api"}
    assert await conveyor.broker.cancel_running([LeaseRef(d.job_id, d.token)]) == [True]
    done = (await api.get(f"/v1/jobs/{job['id']}")).json()
    assert (done["state"], done["cancel_requested"], done["worker"]) == ("cancelled", False,
                                                                        None)
    assert done["history"][-1]["outcome"] == "cancelled"
    assert "api" in done["history"][-1]["message"]
    finished = await api.post(f"/v1/jobs/{job['id']}/cancel")
    assert finished.status_code == 409
    assert error_of(finished)["details"]["state"] == "cancelled"
