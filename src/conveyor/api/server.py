"""How `conveyor api` and `conveyor dev` run uvicorn: one set of options, and an HTTP protocol
that bounds what a client can hold.

uvicorn's httptools protocol (the fast one, picked when httptools is installed) reads headers
of any size (32 MB were accepted) and waits forever for a request that arrives a byte at a
time, or for a connection that sends nothing: its keep-alive timer runs only between
requests. `h11_max_incomplete_event_size` bounds headers only under the slower h11 protocol,
and no option bounds read time. This subclass adds, per request:
- a header limit (`CONVEYOR_MAX_HEADER_BYTES`: request line and headers, counted exactly once
  parsed, and as raw bytes while they arrive, so an endless header is cut off too): 431;
- a read deadline (`CONVEYOR_REQUEST_READ_TIMEOUT_S`) from a request's first byte (or the
  connection's opening) until its body is in: 408, then the connection is closed;
- the JSON envelope on the protocol's own 400 for a malformed request (plain text before).
The time an application takes to answer is not bounded here.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from conveyor.api.errors import ApiErrorCode, error_body
from conveyor.settings import Settings

log = logging.getLogger("conveyor.api")


class HeadersTooLarge(Exception):
    """Raised from a parser callback: the parser stops, and the 400 path answers 431."""


class BoundedHttpProtocol(HttpToolsProtocol):
    max_header_bytes: ClassVar[int] = 32768
    read_timeout_s: ClassVar[float] = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = False  # between a message's first byte and the end of its headers
        self._header_bytes = 0  # parsed: request target, names and values
        self._raw_header_bytes = 0  # whole chunks read while inside the headers
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_cycle: object = None  # the last request read whole when it was armed
        self._got_bytes = False

    # ---- read deadline ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.read_timeout_s, self._on_deadline)
        self._deadline_cycle = self.cycle
        self._got_bytes = False

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and (self.cycle is None or not self.cycle.more_body):
            self._arm()  # the first byte of the next request
        self._got_bytes = True
        began_before = self._in_headers
        super().data_received(data)
        if self._in_headers and began_before:
            self._raw_header_bytes += len(data)  # the whole chunk was header bytes
            if self._raw_header_bytes > self.max_header_bytes and not self.transport.is_closing():
                self._refuse_too_large()
        cycle = self.cycle
        if cycle is not None and cycle is not self._deadline_cycle and not cycle.more_body:
            self._disarm()  # read whole in time

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        message = f"the request did not arrive within {self.read_timeout_s:g} s"
        details = {"timeout_s": self.read_timeout_s}
        if cycle is not None and cycle is not self._deadline_cycle:  # its body is slow
            log.warning("api_request_timeout", extra={"phase": "body", "client": self.client})
            cycle.disconnected = True  # the application reads a disconnect and sends nothing
            cycle.message_event.set()
            if not cycle.response_started:
                self._refuse(408, ApiErrorCode.REQUEST_TIMEOUT, message, details)
        elif self._got_bytes and (cycle is None or cycle.response_complete):
            log.warning("api_request_timeout", extra={"phase": "headers", "client": self.client})
            self._refuse(408, ApiErrorCode.REQUEST_TIMEOUT, message, details)
        self.transport.close()  # silent, or a previous answer still being written

    # ---- header size ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = self._raw_header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.max_header_bytes:
            raise HeadersTooLarge

    def _refuse_too_large(self) -> None:
        log.warning("api_headers_too_large", extra={"client": self.client,
                                                    "limit": self.max_header_bytes})
        self._refuse(431, ApiErrorCode.HEADERS_TOO_LARGE,
                     f"request line and headers over the limit of {self.max_header_bytes} bytes",
                     {"limit": self.max_header_bytes})

    # ---- answers the protocol sends itself ------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this while handling the parser's error, which says what was wrong."""
        exc = sys.exc_info()[1]
        if exc is not None and isinstance(exc.__context__, HeadersTooLarge):
            self._refuse_too_large()
            return
        reason = str(exc) if exc is not None and exc.__context__ is None else ""
        self._refuse(400, ApiErrorCode.BAD_REQUEST,
                     f"malformed HTTP request: {reason}" if reason else "malformed HTTP request")

    def _refuse(self, status: int, code: str, message: str, details: Any = None) -> None:
        body = error_body(code, message, details)
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n", body]
        self.transport.write(b"".join(content))
        self.transport.close()


def protocol_for(settings: Settings) -> type[BoundedHttpProtocol]:
    class Configured(BoundedHttpProtocol):
        max_header_bytes = settings.max_header_bytes
        read_timeout_s = settings.request_read_timeout_s

    return Configured


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options of every Conveyor server; host, port and access log are the caller's."""
    return {
        "http": protocol_for(settings), "log_config": None, "server_header": False,
        "lifespan": "on",
    }
