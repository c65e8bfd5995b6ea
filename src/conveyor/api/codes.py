"""The error codes only the HTTP layer produces (next to the shared `ErrorCode`s); a
module of its own so the OpenAPI document and the error handlers both import it.
"""

from __future__ import annotations

from enum import StrEnum


class ApiErrorCode(StrEnum):
    """Codes only the HTTP layer produces, next to the shared `ErrorCode`s."""

    BAD_REQUEST = "bad_request"
    INVALID_JSON = "invalid_json"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    NOT_FOUND = "not_found"
    #: `GET /v1/queues/{name}/limits` of a queue without limits (never set, or deleted)
    LIMITS_NOT_FOUND = "limits_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    HEADERS_TOO_LARGE = "headers_too_large"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    INTERNAL_ERROR = "internal_error"
