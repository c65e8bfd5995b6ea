"""Bad input: each kind is refused with the right status, a precise `details`, and nothing
stored. Run against the fast path and the FastAPI route alike (`enqueue_api`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from conveyor.jobs import MAX_DELAY_MS
from tests.api.api_support import locs
from tests.support.asgi import error_of
from tests.support.keys import prefix_keys

LATER = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

BAD_JOBS: list[tuple[str, Any, str, list[Any]]] = [
    ("unknown type", {"type": "no.such.type"}, "unknown_job_type", ["body", "type"]),
    ("type missing", {"payload": {}}, "validation_error", ["body", "type"]),
    # a forged webhook delivery would be signed and sent to a subscriber: Conveyor's own
    # types are never enqueued over HTTP, whatever the payload
    ("reserved type", {"type": "conveyor.webhook", "payload": {
        "subscription_id": "wh_" + "0" * 32, "event": {}}}, "validation_error",
     ["body", "type"]),
    ("type not a string", {"type": 7}, "validation_error", ["body", "type"]),
    ("type with spaces", {"type": "a b"}, "validation_error", ["body", "type"]),
    ("string for an int", {"type": "fake", "priority": "10"}, "validation_error",
     ["body", "priority"]),
    ("fraction for an int", {"type": "fake", "priority": 1.5}, "validation_error",
     ["body", "priority"]),
    ("bool for an int", {"type": "fake", "max_attempts": True}, "validation_error",
     ["body", "max_attempts"]),
    ("priority out of range", {"type": "fake", "priority": 1001}, "validation_error",
     ["body", "priority"]),
    ("negative delay", {"type": "fake", "delay_ms": -1}, "validation_error",
     ["body", "delay_ms"]),
    ("delay over 365 days", {"type": "fake", "delay_ms": MAX_DELAY_MS + 1},
     "validation_error", ["body", "delay_ms"]),
    ("run_at without a zone", {"type": "fake", "run_at": "2030-01-01T00:00:00"},
     "validation_error", ["body", "run_at"]),
    ("run_at not a time", {"type": "fake", "run_at": "tomorrow"}, "validation_error",
     ["body", "run_at"]),
    ("run_at as a number", {"type": "fake", "run_at": 1_900_000_000}, "validation_error",
     ["body", "run_at"]),
    ("run_at after 2999", {"type": "fake", "run_at": "3000-01-01T00:00:00Z"},
     "validation_error", ["body", "run_at"]),
    ("run_at in year 0 UTC", {"type": "fake", "run_at": "0001-01-01T00:00:00+23:59"},
     "validation_error", ["body", "run_at"]),
    ("run_at before 1970", {"type": "fake", "run_at": "1969-12-31T23:59:59Z"},
     "validation_error", ["body", "run_at"]),
    ("delay_ms and run_at", {"type": "fake", "delay_ms": 5, "run_at": LATER},
     "validation_error", ["body"]),
    ("max_attempts 0", {"type": "fake", "max_attempts": 0}, "validation_error",
     ["body", "max_attempts"]),
    ("max_attempts 101", {"type": "fake", "max_attempts": 101}, "validation_error",
     ["body", "max_attempts"]),
    ("timeout 0", {"type": "fake", "timeout_s": 0}, "validation_error", ["body", "timeout_s"]),
    ("queue with a space", {"type": "fake", "queue": "my queue"}, "validation_error",
     ["body", "queue"]),
    ("empty queue", {"type": "fake", "queue": ""}, "validation_error", ["body", "queue"]),
    ("queue too long", {"type": "fake", "queue": "q" * 65}, "validation_error",
     ["body", "queue"]),
    ("queue with a colon", {"type": "fake", "queue": "a:b"}, "validation_error",
     ["body", "queue"]),
    ("empty idempotency key", {"type": "fake", "idempotency_key": ""}, "validation_error",
     ["body", "idempotency_key"]),
    ("idempotency key not ASCII", {"type": "fake", "idempotency_key": "\u00e9t\u00e9"},
     "validation_error", ["body", "idempotency_key"]),
    ("idempotency key with a tab", {"type": "fake", "idempotency_key": "a\tb"},
     "validation_error", ["body", "idempotency_key"]),
    ("unknown field", {"type": "fake", "colour": "red"}, "validation_error",
     ["body", "colour"]),
    ("payload against its model", {"type": "fake", "payload": {"duration_ms": "5"}},
     "validation_error", ["body", "payload", "duration_ms"]),
    ("payload field unknown to its model", {"type": "fake", "payload": {"nope": 1}},
     "validation_error", ["body", "payload", "nope"]),
    ("body not an object", [{"type": "fake"}], "validation_error", ["body"]),
]


@pytest.mark.parametrize(("body", "code", "loc"), [c[1:] for c in BAD_JOBS],
                         ids=[c[0] for c in BAD_JOBS])
async def test_bad_job_is_422_with_details_and_not_stored(
    enqueue_api: httpx.AsyncClient, prefix: str, body: Any, code: str, loc: list[Any]
) -> None:
    r = await enqueue_api.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    err = error_of(r)
    assert err["code"] == code
    assert loc in locs(r), err
    for detail in err["details"]:
        assert detail["msg"] and detail["type"]
    assert await prefix_keys(prefix) == []


async def test_malformed_json_is_400(enqueue_api: httpx.AsyncClient, prefix: str) -> None:
    for path in ("/v1/jobs", "/v1/jobs/batch"):
        for text in (b'{"type": "fake",', b"", b"nul", b'{"type": "fake"} trailing'):
            r = await enqueue_api.post(path, content=text,
                                       headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (path, text, r.text)
            assert error_of(r)["code"] == "invalid_json"
    assert await prefix_keys(prefix) == []


async def test_wrong_content_type_is_415(enqueue_api: httpx.AsyncClient, prefix: str) -> None:
    body = b'{"type": "fake"}'
    for path in ("/v1/jobs", "/v1/jobs/batch"):
        for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/xml"},
                        {}):
            r = await enqueue_api.post(path, content=body, headers=headers)
            assert r.status_code == 415, (path, headers, r.text)
            assert error_of(r)["code"] == "unsupported_media_type"
    assert await prefix_keys(prefix) == []
    ok = await enqueue_api.post("/v1/jobs", content=body,
                                headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize("bad_id", [
    "nope", "default:" + "g" * 32, "default:" + "0" * 31, "default:" + "A" * 32,
    "bad%20queue:" + "0" * 32, ":" + "0" * 32, "q" * 65 + ":" + "0" * 32,
])
async def test_ids_that_are_not_ids_are_422(api: httpx.AsyncClient, bad_id: str) -> None:
    for r in (await api.get(f"/v1/jobs/{bad_id}"),
              await api.post(f"/v1/jobs/{bad_id}/cancel"),
              await api.post(f"/v1/jobs/{bad_id}/retry"),
              await api.delete(f"/v1/dlq/{bad_id}")):
        assert r.status_code == 422, (bad_id, r.text)
        assert error_of(r)["code"] == "validation_error"
        assert locs(r) == [["path", "id"]]


async def test_unknown_route_and_method(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v2/jobs")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    wrong = await api.put("/v1/jobs")
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "method_not_allowed"
    assert "POST" in wrong.headers["allow"]


async def test_bad_queue_names_in_paths_are_422(api: httpx.AsyncClient) -> None:
    for path in ("/v1/queues/a%20b/pause", "/v1/queues/" + "q" * 65 + "/resume"):
        r = await api.post(path)
        assert r.status_code == 422, r.text
        assert locs(r) == [["path", "name"]]
