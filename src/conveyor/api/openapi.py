"""The OpenAPI document, made for client authors: camelCase operationIds, named request and
response schemas, the error envelope with its `ErrorCode` enum and headers, the bearer scheme
declared on every `/v1` operation, links between operations, and one `JobIn` variant per job
type the server knows (`openapi_jobs.py`).

It is the same whatever the settings (API keys set or not, limits): a server without keys
ignores the bearer header. It changes only with the code: the job types of `--app`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from conveyor.api.codes import ApiErrorCode
from conveyor.api.openapi_jobs import add_job_variants
from conveyor.api.openapi_schedules import add_schedule_schemas
from conveyor.api.schemas import ErrorEnvelope
from conveyor.errors import ErrorCode

REF = "#/components/schemas/{model}"
BEARER = "bearerAuth"
SERVERS = [{"url": "/", "description": "The server that serves this document"}]

_WHY = {
    400: "Malformed JSON (`invalid_json`)",
    401: "Missing or wrong bearer key (`unauthorized`), on a server with API keys",
    403: "A browser request from another origin (`forbidden_origin`)",
    404: "No such job, queue, webhook, schedule or queue limits (`job_not_found`, "
    "`queue_not_found`, `webhook_not_found`, `schedule_not_found`, `limits_not_found`)",
    409: "The job's (or queue's) state does not allow this (`invalid_state`), an "
    "idempotency key names another request (`idempotency_conflict`), or the job's stored "
    "record does not parse (`corrupt_job`, naming the field; `corrupt_record` for a webhook)",
    413: "Body over the server's limit, `CONVEYOR_MAX_BODY_BYTES` (`payload_too_large`)",
    415: "Body not declared as JSON (`unsupported_media_type`)",
    422: "Invalid input (`validation_error`, `unknown_job_type`) with per-field `details`",
    503: "Broker unreachable (`broker_unavailable`), out of memory (`broker_full`) or "
    "unsafe (`broker_misconfigured`); try again after `Retry-After`",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "seconds to wait before trying again",
                          "schema": {"type": "integer", "minimum": 0}}},
}
TAGS = [
    {"name": "jobs", "description": "Enqueue, read, list, cancel and retry jobs."},
    {"name": "queues", "description": "Counts per state; pause and resume deliveries."},
    {"name": "dlq", "description": "The dead-letter queue: list, redrive and purge."},
    {"name": "workers", "description": "The live workers and the jobs they hold."},
    {"name": "webhooks", "description": "Subscriptions to job events, delivered as signed "
     "POSTs (Standard Webhooks)."},
    {"name": "events", "description": "The job event log as a live, resumable stream."},
    {"name": "schedules", "description": "Recurring jobs: cron or every_s, in a time zone, "
     "exactly one job per tick."},
    {"name": "health", "description": "Probes for load balancers; never behind a key."},
]
#: (path, method) -> status -> links (kept when their target operation exists)
_LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
_BY_ID = {"id": "$response.body#/id"}
for _status in ("200", "201"):
    _LINKS.setdefault(("/v1/jobs", "post"), {})[_status] = {
        "getJob": {"operationId": "getJob", "parameters": _BY_ID},
        "cancelJob": {"operationId": "cancelJob", "parameters": _BY_ID},
        "retryJob": {"operationId": "retryJob", "parameters": _BY_ID},
        "getJobLogs": {"operationId": "getJobLogs", "parameters": _BY_ID},
    }
    _LINKS.setdefault(("/v1/jobs/batch", "post"), {})[_status] = {
        "getFirstJob": {"operationId": "getJob",
                        "parameters": {"id": "$response.body#/jobs/0/id"}},
    }
_BY_NAME = {"name": "$response.body#/name"}
_LINKS[("/v1/queues/{name}/pause", "post")] = {"200": {
    "resumeQueue": {"operationId": "resumeQueue", "parameters": _BY_NAME},
    "getQueue": {"operationId": "getQueue", "parameters": _BY_NAME},
}}
_LINKS[("/v1/webhooks", "post")] = {"201": {
    "getWebhook": {"operationId": "getWebhook", "parameters": _BY_ID},
    "deleteWebhook": {"operationId": "deleteWebhook", "parameters": _BY_ID},
}}
_LINKS[("/v1/queues/{name}/resume", "post")] = {"200": {
    "pauseQueue": {"operationId": "pauseQueue", "parameters": _BY_NAME},
}}

#: models the routes read from the body themselves (see `json_body`)
_BODY_MODELS: dict[str, type[BaseModel]] = {}
#: schemas that are not models (e.g. an event stream's body), named components too
_NAMED_SCHEMAS: dict[str, dict[str, Any]] = {}


def named_schema(name: str, schema: dict[str, Any]) -> dict[str, str]:
    """Register `schema` as the component `name`; returns its `$ref`."""
    _NAMED_SCHEMAS[name] = schema
    return {"$ref": REF.format(model=name)}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for s in statuses:
        out[s] = {"model": ErrorEnvelope, "description": _WHY[s]}
        if s in _HEADERS:
            out[s]["headers"] = _HEADERS[s]
    return out


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a route that reads `model` from the body itself (strict JSON mode,
    not FastAPI's body parameters); the model becomes a named component."""
    _BODY_MODELS[model.__name__] = model
    ref = {"$ref": REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def operation_id(route: APIRoute) -> str:
    """`get_job` -> `getJob`: each route's function is named for its operation."""
    head, *rest = route.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def add_models(schemas: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas[model.__name__] = schema


def _error_codes(schemas: dict[str, Any]) -> None:
    """The envelope's `code` as an enum of every code the API sends."""
    codes = list(dict.fromkeys([*map(str, ErrorCode), *map(str, ApiErrorCode), "http_error"]))
    schemas["ErrorCode"] = {
        "type": "string", "enum": codes, "title": "ErrorCode",
        "description": "Stable error codes. New ones may be added: treat an unknown code by "
        "its HTTP status.",
    }
    body = schemas["ErrorBody"]["properties"]
    body["code"] = {"$ref": REF.format(model="ErrorCode"),
                    "description": body["code"].get("description", "")}
    schemas.setdefault("JsonValue", {})["description"] = (
        "Any JSON value: an object, an array, a string, a number, a boolean or null")


#: methods the browser guard (`api/guard.py`) checks: a foreign Origin is 403, a body (or a
#: content type) not declared JSON is 415, on every such route
_STATE_CHANGING = frozenset({"post", "put", "patch", "delete"})


def _guard_responses(op: dict[str, Any]) -> None:
    for status in (403, 415):
        op["responses"].setdefault(str(status), {
            "description": _WHY[status],
            "content": {"application/json": {"schema": {"$ref": REF.format(
                model=ErrorEnvelope.__name__)}}},
        })


def _security_and_links(doc: dict[str, Any]) -> None:
    doc["components"]["securitySchemes"] = {BEARER: {
        "type": "http", "scheme": "bearer",
        "description": "A key from `CONVEYOR_API_KEYS`. A server without keys ignores it.",
    }}
    ids = {op.get("operationId") for item in doc["paths"].values() for op in item.values()}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            op["security"] = [{BEARER: []}] if path.startswith("/v1/") else []
            if method in _STATE_CHANGING:
                _guard_responses(op)
            for status, links in _LINKS.get((path, method), {}).items():
                kept = {k: v for k, v in links.items() if v["operationId"] in ids}
                if kept and status in op["responses"]:
                    op["responses"][status]["links"] = kept


def install_openapi(app: FastAPI, body_models: Iterable[type[BaseModel]] = ()) -> None:
    """Generate the document once, on first request, with the job types known by then."""
    extra = list(body_models)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes, servers=SERVERS, tags=TAGS,
            )
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            add_models(schemas, [*extra, *_BODY_MODELS.values()])
            schemas.update(_NAMED_SCHEMAS)
            runtime = getattr(app.state, "runtime", None)
            if runtime is not None and runtime.client.validate_types:
                add_job_variants(schemas, runtime.client.registry)
            add_schedule_schemas(schemas, runtime.client.registry if runtime is not None
                                 and runtime.client.validate_types else None)
            _error_codes(schemas)
            _security_and_links(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the document lists for `path` (a 405's `Allow`), taken from the most
    literal matching template, so `/v1/jobs/batch` answers for itself, not as `{id}`."""
    best: tuple[int, list[str]] | None = None
    for template, item in app.openapi().get("paths", {}).items():
        regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(regex, path):
            params = template.count("{")
            if best is None or params < best[0]:
                best = (params, sorted(m.upper() for m in item if m != "parameters"))
    return best[1] if best else []
