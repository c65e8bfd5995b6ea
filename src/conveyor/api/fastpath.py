"""`POST /v1/jobs` served in front of the framework: the API's hot path, as plain ASGI.

FastAPI's per-request machinery (exception middleware, router, dependency solving, request
and response objects) costs more than the enqueue itself. This middleware answers exactly
`POST /v1/jobs` through `enqueue_one`, the same function the FastAPI route calls (the route
stays for the OpenAPI document and for apps built without the fast path), with the same auth
check and the same error envelope. Everything else goes on to FastAPI untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.api.auth import ApiKeys, bearer_token
from conveyor.api.enqueue import enqueue_one
from conveyor.api.errors import (
    ApiErrorCode,
    Unauthorized,
    conveyor_error_response,
    error_response,
)
from conveyor.api.runtime import ApiRuntime
from conveyor.errors import ConveyorError

log = logging.getLogger("conveyor.api")

PATH = "/v1/jobs"
_JSON = b"application/json"


@dataclass(frozen=True, slots=True)
class RouteLabel:
    """Put in the scope as `route`, as the router does, so metrics label the request alike."""

    path: str


ROUTE = RouteLabel(PATH)


class EnqueueFastPath:
    def __init__(self, app: ASGIApp, runtime: ApiRuntime, keys: ApiKeys) -> None:
        self.app = app
        self.runtime = runtime
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE
        content_type = authorization = idem_key = None
        for name, value in scope["headers"]:  # the first of repeated headers, as Starlette
            if name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"idempotency-key" and idem_key is None:
                idem_key = value.decode("latin-1")
        try:
            if self.keys and not self.keys.accepts(bearer_token(authorization)):
                raise Unauthorized("a valid API key is required: Authorization: Bearer <key>")
            parts: list[bytes] = []
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away: nobody to answer
                parts.append(message.get("body", b""))
                more = message.get("more_body", False)
            out = await enqueue_one(self.runtime, content_type, b"".join(parts), idem_key)
        except ConveyorError as exc:
            await conveyor_error_response(exc)(scope, receive, send)
            return
        except Exception as exc:
            log.error("api_unhandled_error", exc_info=exc)
            await error_response(ApiErrorCode.INTERNAL_ERROR, "internal error", status=500)(
                scope, receive, send)
            return
        await send({
            "type": "http.response.start",
            "status": out.status,
            "headers": [
                (b"content-type", _JSON),
                (b"content-length", str(len(out.body)).encode()),
                (b"location", out.location.encode()),
            ],
        })
        await send({"type": "http.response.body", "body": out.body})
