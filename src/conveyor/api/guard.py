"""Keeps other sites' pages from changing state through the API (CSRF), with or without keys.

A browser lets any page send a "simple" cross-origin request without asking the server first:
a form post, or a fetch whose body is form data or text/plain (or no body at all). So on every
method but GET/HEAD/OPTIONS this refuses, before any route runs:
- an `Origin` that is neither the API's own (the `Host` the request was sent to) nor one of
  `CONVEYOR_ALLOWED_ORIGINS`: 403 `forbidden_origin` (no `Origin`, as from curl or another
  server, passes: only browsers send it, and they always do on such requests);
- a body declared as anything but JSON, or sent undeclared: 415 `unsupported_media_type`
  (a JSON content type is not "simple": a browser must ask first, and nothing answers yes).

Pure ASGI in front of the POST /v1/jobs fast path, so both enqueue paths share these rules.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.api.body import is_json
from conveyor.api.errors import ApiErrorCode, error_response
from conveyor.origins import normalize_origin, same_host

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BrowserGuard:
    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {n for n in map(normalize_origin, allowed_origins) if n is not None}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        origin = host = content_type = None
        has_body = False
        for name, value in scope["headers"]:  # the first of repeated headers, as Starlette
            if name == b"origin" and origin is None:
                origin = value.decode("latin-1")
            elif name == b"host" and host is None:
                host = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                has_body = has_body or value.strip().lstrip(b"0") != b""
            elif name == b"transfer-encoding":
                has_body = True
        if origin is not None and not self._allows(origin, host):
            response = error_response(
                ApiErrorCode.FORBIDDEN_ORIGIN,
                f"a page at {origin} may not change state here; its origin is not this API's "
                "own nor in CONVEYOR_ALLOWED_ORIGINS", {"origin": origin})
        elif (content_type is not None and not is_json(content_type)) or (
                content_type is None and has_body):
            response = error_response(
                ApiErrorCode.UNSUPPORTED_MEDIA_TYPE,
                "a request that changes state takes a JSON body "
                "(Content-Type: application/json) or none", {"content_type": content_type})
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    def _allows(self, origin: str, host: str | None) -> bool:
        return same_host(origin, host) or normalize_origin(origin) in self.allowed
