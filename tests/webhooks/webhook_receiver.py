"""A real HTTP(S) receiver on 127.0.0.1 and a free port (the stdlib's ThreadingHTTPServer
in a thread of its own), answering each POST as the test's script says and recording every
request as it arrived: path, headers, raw body bytes, arrival time.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


#: (number of the request, 1-based; the request) -> (status, headers, body)
Respond = Callable[[int, Hit], tuple[int, dict[str, str], bytes]]


def always(status: int, headers: dict[str, str] | None = None) -> Respond:
    return lambda n, hit: (status, headers or {}, b"")


def failing_first(count: int, status: int = 500) -> Respond:
    """`status` for the first `count` requests (whatever they carry), then 200."""
    return lambda n, hit: (status, {}, b"down for now") if n <= count else (200, {}, b"ok")


class Receiver:
    def __init__(self, respond: Respond, *, tls: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                hit = Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                          time.monotonic())
                with receiver._lock:
                    receiver.hits.append(hit)
                    number = len(receiver.hits)
                status, headers, payload = receiver.respond(number, hit)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=f"receiver-{self.port}", daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def snapshot(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
