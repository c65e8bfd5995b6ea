"""Every error the application sends is the JSON envelope, and a bug never costs the client
its connection.

Starlette's outermost `ServerErrorMiddleware` answers an exception that escaped every handler
and then re-raises it (so servers can log it); uvicorn, seeing an exception, closes the
connection although the 500 was complete, and a keep-alive client gets a reset on its next
request. This middleware sits inside it (innermost of ours): it logs the exception once
(`api_unhandled_error`) and answers 500 `internal_error` when nothing was sent yet, and the
exception goes no further. Only a response cut off half-way is re-raised: the server must
then close the connection, the client could not tell where the answer ended.

It also rewrites the error answers some framework parts send as plain text (StaticFiles' 400
for a malformed `Range`, its 416) into the envelope, with their status and other headers.
"""

from __future__ import annotations

import http
import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api.errors import ApiErrorCode, code_for_status, error_body, error_response

log = logging.getLogger("conveyor.api")

#: of a plain-text error body, this much becomes the envelope's message
MESSAGE_MAX = 200
_DROPPED = frozenset({b"content-type", b"content-length", b"content-encoding"})


class ErrorEnvelope:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = complete = False
        held: Message | None = None  # the start of a plain-text error, until its body is in
        text = b""

        async def send_enveloped(message: Message) -> None:
            nonlocal started, complete, held, text
            if message["type"] == "http.response.start":
                if message["status"] >= 400 and not _is_json(message.get("headers", ())):
                    held = message
                    return
                started = True
            elif message["type"] == "http.response.body" and held is not None:
                text = (text + message.get("body", b""))[:MESSAGE_MAX]
                if message.get("more_body", False):
                    return
                start, held = held, None
                for part in _envelope(start, text):
                    started = True
                    await send(part)
                complete = True
                return
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, send_enveloped)
        except Exception as exc:
            if started and not complete:
                log.error("api_unhandled_error", exc_info=exc)
                raise  # half an answer is out: only closing the connection tells the client
            if isinstance(exc, ClientDisconnect):
                log.info("api_client_disconnected", extra={"path": scope.get("path")})
                return
            log.error("api_unhandled_error", exc_info=exc)
            if not started:
                await error_response(ApiErrorCode.INTERNAL_ERROR, "internal error",
                                     status=500)(scope, receive, send)


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def _envelope(start: Message, text: bytes) -> tuple[Message, Message]:
    status: int = start["status"]
    message = text.decode("utf-8", "replace").strip()
    if not message:
        try:
            message = http.HTTPStatus(status).phrase
        except ValueError:
            message = f"HTTP {status}"
    body = error_body(code_for_status(status), message)
    headers = [(n, v) for n, v in start.get("headers", ()) if n.lower() not in _DROPPED]
    headers += [(b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode())]
    return ({"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body})
