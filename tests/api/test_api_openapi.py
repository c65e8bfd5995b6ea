"""The OpenAPI document as a client author reads it: valid (openapi-spec-validator), the same
whatever the settings, readable operationIds, named schemas, every field a response always
sends marked required, the error codes as an enum, and every error a route really returns
documented there (413 from the body limit, 503 with `Retry-After` from a broker that is down).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from conveyor.api.errors import ApiErrorCode
from conveyor.client import AsyncConveyor
from conveyor.errors import ErrorCode
from conveyor.web import create_app
from tests.api.api_support import settings_for
from tests.support.asgi import serve

OPERATION_IDS = {
    ("post", "/v1/jobs"): "enqueueJob",
    ("post", "/v1/jobs/batch"): "enqueueJobs",
    ("get", "/v1/jobs"): "listJobs",
    ("get", "/v1/jobs/{id}"): "getJob",
    ("get", "/v1/jobs/{id}/wait"): "waitJob",
    ("get", "/v1/jobs/{id}/logs"): "getJobLogs",
    ("get", "/v1/events"): "streamEvents",
    ("post", "/v1/jobs/{id}/retry"): "retryJob",
    ("post", "/v1/jobs/{id}/cancel"): "cancelJob",
    ("get", "/v1/queues"): "listQueues",
    ("get", "/v1/queues/{name}"): "getQueue",
    ("get", "/v1/queues/{name}/series"): "getQueueSeries",
    ("post", "/v1/queues/{name}/pause"): "pauseQueue",
    ("post", "/v1/queues/{name}/resume"): "resumeQueue",
    ("delete", "/v1/queues/{name}"): "deleteQueue",
    ("put", "/v1/queues/{name}/limits"): "putQueueLimits",
    ("get", "/v1/queues/{name}/limits"): "getQueueLimits",
    ("delete", "/v1/queues/{name}/limits"): "deleteQueueLimits",
    ("get", "/v1/queues/{name}/keys"): "listQueueKeys",
    ("get", "/v1/dlq"): "listDeadJobs",
    ("delete", "/v1/dlq/{id}"): "purgeDeadJob",
    ("post", "/v1/dlq/redrive"): "redriveDeadJobs",
    ("post", "/v1/dlq/purge"): "purgeDeadJobs",
    ("get", "/v1/workers"): "listWorkers",
    ("post", "/v1/webhooks"): "createWebhook",
    ("get", "/v1/webhooks"): "listWebhooks",
    ("get", "/v1/webhooks/{id}"): "getWebhook",
    ("delete", "/v1/webhooks/{id}"): "deleteWebhook",
    ("put", "/v1/schedules/{name}"): "putSchedule",
    ("get", "/v1/schedules"): "listSchedules",
    ("get", "/v1/schedules/{name}"): "getSchedule",
    ("delete", "/v1/schedules/{name}"): "deleteSchedule",
    ("post", "/v1/schedules/{name}/pause"): "pauseSchedule",
    ("post", "/v1/schedules/{name}/resume"): "resumeSchedule",
    ("post", "/v1/schedules/{name}/trigger"): "triggerSchedule",
    ("get", "/v1/schedules/{name}/runs"): "listScheduleRuns",
    ("post", "/v1/schedules/preview"): "previewSchedule",
    ("get", "/healthz"): "healthz",
    ("get", "/readyz"): "readyz",
}
JOB_ID = "default:" + "0" * 32
WEBHOOK_ID = "wh_" + "0" * 32
#: a request each operation accepts (path parameters filled in, a valid body)
BODIES: dict[str, Any] = {
    "enqueueJob": {"type": "fake"}, "enqueueJobs": {"jobs": [{"type": "fake"}]},
    "redriveDeadJobs": {"queue": "default"}, "purgeDeadJobs": {"queue": "default"},
    "createWebhook": {"url": "https://1.1.1.1/hook", "events": ["job.dead"]},
    "putQueueLimits": {"concurrency": 2},
    "putSchedule": {"every_s": 60, "job": {"type": "fake"}}, "previewSchedule": {"every_s": 60},
}


def document(**settings: Any) -> dict[str, Any]:
    app = create_app(settings=settings_for("cvt-doc", **settings))
    doc: dict[str, Any] = app.openapi()
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]


def url_of(path: str) -> str:
    if path.startswith("/v1/webhooks/"):
        return path.replace("{id}", WEBHOOK_ID)
    return path.replace("{id}", JOB_ID).replace("{name}", "default")


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_the_document_is_valid_openapi_and_the_same_whatever_the_settings() -> None:
    plain = document()
    validate(plain)  # openapi-spec-validator: raises on any error
    assert plain["openapi"].startswith("3.1")
    assert document(api_keys="k1,k2", max_body_bytes=1024) == plain
    assert plain["servers"] == [{"url": "/", "description": "The server that serves this "
                                 "document"}]


def test_operation_ids_are_camel_case_names() -> None:
    doc = document()
    assert {(m, p): op["operationId"] for m, p, op in operations(doc)} == OPERATION_IDS


def test_bodies_and_responses_are_named_schemas() -> None:
    """No `Body_...` / `Response ...` inline schemas: every body is a component of its own."""
    doc = document()
    for _, _, op in operations(doc):
        contents = [r.get("content", {}) for r in op["responses"].values()]
        if "requestBody" in op:
            contents.append(op["requestBody"]["content"])
        for content in contents:
            for media in content.values():
                assert set(media["schema"]) == {"$ref"}, (op["operationId"], media)
    names = set(doc["components"]["schemas"])
    assert not [n for n in names if "_" in n or " " in n or n.startswith("Body")], names
    job_in = doc["components"]["schemas"]["JobIn"]
    assert job_in["discriminator"]["propertyName"] == "type"
    assert set(job_in["discriminator"]["mapping"]) == {"fake", "email.send"}
    fake = doc["components"]["schemas"]["FakeJobIn"]
    assert fake["properties"]["type"] == {"type": "string", "const": "fake"}
    assert fake["required"] == ["type"]  # every other field has a default
    assert doc["components"]["schemas"]["EmailSendJobIn"]["required"] == ["type", "payload"]


def _response_schemas(doc: dict[str, Any]) -> set[str]:
    """Every component reachable from a response body."""
    seen: set[str] = set()
    todo = [media["schema"] for _, _, op in operations(doc) for r in op["responses"].values()
            for media in r.get("content", {}).values()]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref and ref.rsplit("/", 1)[1] not in seen:
                seen.add(ref.rsplit("/", 1)[1])
                todo.append(doc["components"]["schemas"][ref.rsplit("/", 1)[1]])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return seen


def test_every_field_a_response_always_sends_is_required() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    reachable = _response_schemas(doc)
    assert {"Job", "Attempt", "JobPage", "QueueOut", "ErrorBody", "RedriveOut"} <= reachable
    for name in reachable - {"FieldError"}:  # FieldError.index: batch errors only
        props = schemas[name].get("properties")
        if props:
            assert sorted(schemas[name].get("required", [])) == sorted(props), name
    assert schemas["Job"]["properties"]["payload"]["$ref"].endswith("/JsonValue")
    assert schemas["JsonValue"]["description"].startswith("Any JSON value")


def test_cancel_documents_both_answers() -> None:
    """200: a waiting job cancelled at once; 202: a running job whose worker is asked to
    stop it (the job, still running, with `cancel_requested`)."""
    doc = document()
    responses = doc["paths"]["/v1/jobs/{id}/cancel"]["post"]["responses"]
    for status in ("200", "202"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Job"}, status
    job = doc["components"]["schemas"]["Job"]["properties"]
    assert job["cancel_requested"]["type"] == "boolean"
    assert {"worker", "cancel_requested_by"} <= set(job)


def test_errors_carry_the_error_code_enum_and_their_headers() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    codes = set(schemas["ErrorCode"]["enum"])
    assert {str(c) for c in ErrorCode} | {str(c) for c in ApiErrorCode} <= codes
    assert schemas["ErrorBody"]["properties"]["code"]["$ref"].endswith("/ErrorCode")
    assert doc["components"]["securitySchemes"] == {"bearerAuth": {
        "type": "http", "scheme": "bearer",
        "description": "A key from `CONVEYOR_API_KEYS`. A server without keys ignores it."}}
    for _, path, op in operations(doc):
        v1 = path.startswith("/v1/")
        assert op["security"] == ([{"bearerAuth": []}] if v1 else []), path
        assert ("401" in op["responses"]) == v1, path
        if "503" in op["responses"]:
            assert "Retry-After" in op["responses"]["503"]["headers"]
        if "401" in op["responses"]:
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"]


async def test_every_413_and_503_a_route_returns_is_documented(prefix: str) -> None:
    """A body over the limit to every operation that takes one (any POST or DELETE), and
    every operation against a broker that does not answer."""
    doc = document()
    tiny = create_app(settings=settings_for(prefix, max_body_bytes=64))
    async with serve(tiny) as http:
        for method, path, op in operations(doc):
            if method == "get":
                continue
            res = await http.request(method.upper(), url_of(path), content=b"x" * 65,
                                     headers={"content-type": "application/json"})
            assert res.status_code == 413, (path, res.text)
            assert "413" in op["responses"], op["operationId"]
    down = create_app(settings=settings_for(prefix, broker_url="redis://127.0.0.1:1/0"))
    async with serve(down) as http:
        for method, path, op in operations(doc):
            if op["operationId"] == "healthz":
                continue
            res = await http.request(method.upper(), url_of(path),
                                     json=BODIES.get(op["operationId"]))
            assert res.status_code == 503, (path, res.text)
            assert "503" in op["responses"], op["operationId"]
            assert res.headers["retry-after"].isdigit()


async def test_a_real_next_cursor_matches_the_documented_pattern(
    api: httpx.AsyncClient, conveyor: AsyncConveyor
) -> None:
    doc = (await api.get("/openapi.json")).json()
    params = {p["name"]: p for p in doc["paths"]["/v1/jobs"]["get"]["parameters"]}
    pattern = params["cursor"]["schema"]["anyOf"][0]["pattern"]
    for _ in range(3):
        await conveyor.enqueue("fake", {})
    page = (await api.get("/v1/jobs", params={"limit": 2})).json()
    assert re.fullmatch(pattern, page["next_cursor"])
    rest = (await api.get("/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}))
    assert rest.status_code == 200 and len(rest.json()["items"]) == 1
    bad = await api.get("/v1/jobs", params={"cursor": "0"})  # refused by the pattern
    assert bad.status_code == 422


async def test_what_the_document_allows_the_server_accepts(api: httpx.AsyncClient) -> None:
    """The rules once enforced but unstated: now stated (and refused) or relaxed (accepted)."""
    later = (datetime.now(UTC) + timedelta(days=800)).isoformat()
    far = await api.post("/v1/jobs", json={"type": "fake", "run_at": later})
    assert far.status_code == 201 and far.json()["state"] == "scheduled"
    whole = await api.post("/v1/jobs", json={"type": "fake", "priority": 3.0,
                                             "payload": {"duration_ms": 1e1}})
    assert whole.status_code == 201 and whole.json()["priority"] == 3
    assert whole.json()["payload"]["duration_ms"] == 10
    two_keys = await api.post("/v1/jobs", json={"type": "fake", "idempotency_key": "a"},
                              headers={"Idempotency-Key": "b"})
    assert two_keys.status_code == 409
    assert two_keys.json()["error"]["code"] == "idempotency_conflict"
    queue = await api.get("/v1/queues/never-used")  # a valid name, unknown: documented 404
    assert queue.status_code == 404 and queue.json()["error"]["code"] == "queue_not_found"


@pytest.mark.parametrize("body", [
    {"ids": [JOB_ID], "queue": "default"},  # ids carry their queue: ids alone
    {"queue": None, "type": None},  # at least one filter, not null
    {"dry_run": True},
])
async def test_dlq_selections_the_document_refuses_are_refused(
    api: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    for path in ("/v1/dlq/redrive", "/v1/dlq/purge"):
        res = await api.post(path, json=body)
        assert res.status_code == 422, (path, body, res.text)
