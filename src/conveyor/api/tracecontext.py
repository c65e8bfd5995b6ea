"""Continue the caller's trace (issue 18): the W3C `traceparent` / `tracestate` headers of an
HTTP request become the current context while it is served, so an enqueue's PRODUCER span is
a child of the caller's span. Installed by `create_app` when the OpenTelemetry API is (a
provider may be set after the app is made); a no-op until one is (`tracing.enabled`)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor import tracing

_HEADERS = (b"traceparent", b"tracestate")


class TraceContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = {k.decode("latin-1"): v.decode("latin-1")
                 for k, v in scope.get("headers", ()) if k in _HEADERS}
        if "traceparent" not in found:
            await self.app(scope, receive, send)
            return
        with tracing.incoming(found):
            await self.app(scope, receive, send)
