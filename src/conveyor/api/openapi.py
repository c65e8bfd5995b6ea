"""OpenAPI helpers: the error responses each route documents, and the request bodies that the
routes parse themselves (strict JSON mode) rather than through FastAPI's body parameters.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from conveyor.api.schemas import ErrorEnvelope

_WHY = {
    400: "Malformed JSON (`invalid_json`)",
    401: "Missing or wrong bearer key (`unauthorized`), when `CONVEYOR_API_KEYS` is set",
    404: "No such job or queue (`job_not_found`, `queue_not_found`)",
    409: "The job's (or queue's) state does not allow this (`invalid_state`,"
         " `idempotency_conflict`)",
    413: "Body over `CONVEYOR_MAX_BODY_BYTES` (`payload_too_large`)",
    415: "Body not declared as JSON (`unsupported_media_type`)",
    422: "Invalid input (`validation_error`, `unknown_job_type`) with per-field `details`",
    503: "Broker unreachable (`broker_unavailable`), out of memory (`broker_full`) or"
         " unsafe (`broker_misconfigured`); see `Retry-After`",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorEnvelope, "description": _WHY[s]} for s in statuses}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a route that reads `model` from the body itself."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def install_openapi(app: FastAPI, body_models: list[type[BaseModel]]) -> None:
    """Generate the document once, adding the self-parsed body models to its components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for model in body_models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in schema.pop("$defs", {}).items():
                    schemas.setdefault(name, sub)
                schemas[model.__name__] = schema
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
