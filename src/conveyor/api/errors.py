"""Every error the API returns has one shape, `{"error": {"code", "message", "details"}}`, and
one HTTP status per stable code. The exception handlers here are the only place that mapping
lives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic_core import to_json
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from conveyor.api.codes import ApiErrorCode as ApiErrorCode  # re-exported
from conveyor.api.openapi import allowed_methods
from conveyor.errors import ConveyorError, ErrorCode

log = logging.getLogger("conveyor.api")

#: seconds a client should wait before retrying while the broker is unreachable
RETRY_AFTER_S = 2


STATUS_OF_CODE: dict[str, int] = {
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.UNKNOWN_JOB_TYPE: 422,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.JOB_NOT_FOUND: 404,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.IDEMPOTENCY_CONFLICT: 409,
    # the job exists but its stored record does not parse: the resource's state, not the
    # request, is at fault, and retrying will not help (never a 500)
    ErrorCode.CORRUPT_JOB: 409,
    # some jobs of a batch stored, some not (a Cluster node failed): details name both
    ErrorCode.PARTIAL_ENQUEUE: 409,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.BROKER_UNAVAILABLE: 503,
    ErrorCode.BROKER_MISCONFIGURED: 503,
    ApiErrorCode.BAD_REQUEST: 400,
    ErrorCode.BROKER_FULL: 503,
    ErrorCode.QUEUE_NOT_FOUND: 404,
    ErrorCode.WEBHOOK_NOT_FOUND: 404,
    ErrorCode.SCHEDULE_NOT_FOUND: 404,
    # like corrupt_job: a stored record (a webhook subscription, a schedule) that does not
    # parse
    ErrorCode.CORRUPT_RECORD: 409,
    ApiErrorCode.INVALID_JSON: 400,
    ApiErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ApiErrorCode.FORBIDDEN_ORIGIN: 403,
    ApiErrorCode.NOT_FOUND: 404,
    ApiErrorCode.LIMITS_NOT_FOUND: 404,
    ApiErrorCode.METHOD_NOT_ALLOWED: 405,
    ApiErrorCode.REQUEST_TIMEOUT: 408,
    ApiErrorCode.HEADERS_TOO_LARGE: 431,
    ApiErrorCode.RANGE_NOT_SATISFIABLE: 416,
}

#: the code of an error that arrives as a bare status (an HTTPException, a framework answer)
_CODE_OF_STATUS: dict[int, str] = {400: ApiErrorCode.BAD_REQUEST, 401: ErrorCode.UNAUTHORIZED,
                   404: ApiErrorCode.NOT_FOUND, 405: ApiErrorCode.METHOD_NOT_ALLOWED,
                   413: ErrorCode.PAYLOAD_TOO_LARGE, 415: ApiErrorCode.UNSUPPORTED_MEDIA_TYPE,
                   416: ApiErrorCode.RANGE_NOT_SATISFIABLE}


class InvalidJson(ConveyorError):
    code = ApiErrorCode.INVALID_JSON


class UnsupportedMediaType(ConveyorError):
    code = ApiErrorCode.UNSUPPORTED_MEDIA_TYPE


class Unauthorized(ConveyorError):
    code = ErrorCode.UNAUTHORIZED


class LimitsNotFound(ConveyorError):
    code = ApiErrorCode.LIMITS_NOT_FOUND


def status_for(code: str) -> int:
    return STATUS_OF_CODE.get(code, 500)


def code_for_status(status: int) -> str:
    default = ApiErrorCode.INTERNAL_ERROR if status >= 500 else "http_error"
    return str(_CODE_OF_STATUS.get(status, default))


def error_body(code: str, message: str, details: Any = None) -> bytes:
    # fallback=str: details may hold values JSON cannot spell (a pydantic ctx, a datetime)
    return to_json({"error": {"code": str(code), "message": message, "details": details}},
                   fallback=str)


def error_response(
    code: str, message: str, details: Any = None, *, status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    status = status if status is not None else status_for(code)
    all_headers = dict(headers or {})
    if status == 503:
        all_headers.setdefault("Retry-After", str(RETRY_AFTER_S))
    elif status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(error_body(code, message, details), status, all_headers,
                    media_type="application/json")


def pydantic_details(
    errors: Iterable[Mapping[str, Any]], prefix: tuple[str | int, ...] = ()
) -> list[dict[str, Any]]:
    """`loc`, `msg` and `type` of each error; the input is left out (it may be huge)."""
    return [
        {"loc": [*prefix, *err.get("loc", ())], "msg": err.get("msg", ""),
         "type": err.get("type", "")}
        for err in errors
    ]


def conveyor_error_response(exc: ConveyorError) -> Response:
    if status_for(str(exc.code)) >= 500:
        log.error("api_error", extra={"code": str(exc.code), "error": exc.message})
    return error_response(str(exc.code), exc.message, exc.details)


async def _conveyor_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConveyorError)
    return conveyor_error_response(exc)


async def _request_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        return error_response(ApiErrorCode.INVALID_JSON, "request body is not valid JSON",
                              pydantic_details(errors))
    return error_response(ErrorCode.VALIDATION_ERROR, "invalid request",
                          pydantic_details(errors))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = code_for_status(exc.status_code)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = "no such route"
    elif exc.status_code == 405:
        allowed = allowed_methods(request.app, request.url.path)
        if allowed:  # every method of the resource, not only those of one route
            headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed here; allowed: {headers.get('Allow', '')}"
    return error_response(code, message, status=exc.status_code, headers=headers)


async def _pydantic_error(_: Request, exc: Exception) -> Response:
    """A model failed to validate outside request parsing: a bug or a corrupt record."""
    assert isinstance(exc, pydantic.ValidationError)
    log.error("api_unexpected_validation_error", exc_info=exc)
    return error_response(ApiErrorCode.INTERNAL_ERROR, "internal error", status=500)


async def _unhandled(_: Request, exc: Exception) -> Response:
    log.error("api_unhandled_error", exc_info=exc)
    return error_response(ApiErrorCode.INTERNAL_ERROR, "internal error", status=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ConveyorError, _conveyor_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(pydantic.ValidationError, _pydantic_error)
    app.add_exception_handler(Exception, _unhandled)
