"""The HTTP layer of `conveyor api` over raw sockets, against a real server: header size and
read-time limits (slowloris), every malformed request answered with the JSON envelope, and a
500 that keeps its keep-alive connection."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from conveyor.api.server import server_options
from conveyor.web import create_app
from tests.api.api_support import read_response, settings_for, wait_ready
from tests.support.env import REDIS_URL, new_prefix
from tests.support.keys import delete_prefix_sync
from tests.support.processes import free_port

SCRIPT = str(Path(sys.executable).parent / "conveyor")
HEADER_LIMIT = 16384
READ_TIMEOUT_S = 1.0
#: how long a test waits for what the server must do within READ_TIMEOUT_S (load happens)
PATIENCE_S = 10.0


@pytest.fixture(scope="module")
def api_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One `conveyor api` for the module, with small header and read-time limits."""
    prefix = new_prefix()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_MAX_HEADER_BYTES=str(HEADER_LIMIT),
               CONVEYOR_REQUEST_READ_TIMEOUT_S=str(READ_TIMEOUT_S), CONVEYOR_LOG_FORMAT="text")
    log_path = tmp_path_factory.mktemp("api-http") / "api.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [SCRIPT, "--broker-url", REDIS_URL, "--key-prefix", prefix, "api",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(proc, f"http://127.0.0.1:{port}", log_path)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            delete_prefix_sync(prefix)
    assert "Traceback" not in log_path.read_text()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=PATIENCE_S)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def envelope(raw: bytes, status: int) -> dict[str, Any]:
    """The JSON error envelope of a raw answer, after checking its status and shape."""
    got, headers, body = parse(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json", raw[:300]
    doc = json.loads(body)
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message", "details"}, doc
    error: dict[str, Any] = doc["error"]
    return error


def request(path: str = "/healthz", extra: bytes = b"", close: bool = True) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + extra
            + (b"Connection: close\r\n" if close else b"") + b"\r\n")


# ---- header size ---------------------------------------------------------------------------

def test_headers_under_the_limit_pass(api_port: int) -> None:
    headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(12))  # ~12 KiB
    with connect(api_port) as sock:
        sock.sendall(request(extra=headers))
        assert parse(read_response(sock))[0] == 200


@pytest.mark.parametrize("shape", ["one-header", "many-headers", "long-url"])
def test_headers_over_the_limit_are_431(api_port: int, shape: str) -> None:
    if shape == "one-header":
        raw = request(extra=b"X-Big: " + b"a" * (HEADER_LIMIT + 100) + b"\r\n")
    elif shape == "many-headers":
        raw = request(extra=b"".join(b"X-%d: %s\r\n" % (i, b"b" * 100) for i in range(200)))
    else:
        raw = request("/healthz?" + "q" * (HEADER_LIMIT + 100))
    with connect(api_port) as sock:
        sock.sendall(raw)
        answer = read_response(sock)
    error = envelope(answer, 431)
    assert error["code"] == "headers_too_large"
    assert error["details"] == {"limit": HEADER_LIMIT}
    assert parse(answer)[1]["connection"] == "close"


def test_endless_headers_are_refused_before_their_end(api_port: int) -> None:
    """A header section that never ends (the 32 MB case) is refused once it passes the limit:
    the server neither waits for the end nor buffers what it has not been sent."""
    with connect(api_port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(0.05)
        sent, answer = 0, b""
        while not answer and sent < 4 * HEADER_LIMIT:
            line = b"X-More: " + b"c" * 1000 + b"\r\n"
            sock.sendall(line)
            sent += len(line)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
        assert answer, f"no answer after {sent} bytes of headers"
        answer += read_response(sock)
    assert envelope(answer, 431)["code"] == "headers_too_large"
    assert sent < 2 * HEADER_LIMIT


# ---- read time (slowloris) -----------------------------------------------------------------

def drip(sock: socket.socket, data: bytes, interval_s: float = 0.1) -> tuple[bytes, float]:
    """Send `data` a byte at a time until the server answers or closes; return what it sent
    and when (seconds after the first byte)."""
    start = time.monotonic()
    sock.settimeout(interval_s)
    for i in range(len(data)):
        try:
            sock.sendall(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return b"", time.monotonic() - start
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        return answer + read_response(sock), time.monotonic() - start
    raise AssertionError(f"still open after {time.monotonic() - start:.1f} s of dripping")


def test_headers_sent_a_byte_at_a_time_are_cut_off(api_port: int) -> None:
    slow = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 200  # 20 s of it
    with connect(api_port) as sock:
        answer, after = drip(sock, slow)
    error = envelope(answer, 408)
    assert error["code"] == "request_timeout"
    assert after < PATIENCE_S


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/batch"])  # fast path, FastAPI
def test_a_body_sent_a_byte_at_a_time_is_cut_off(api_port: int, path: str) -> None:
    body = json.dumps({"jobs": [{"type": "fake", "payload": {"pad": "p" * 200}}]}).encode()
    head = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (path.encode(), len(body)))
    with connect(api_port) as sock:
        sock.sendall(head)
        answer, after = drip(sock, body)
    assert envelope(answer, 408)["code"] == "request_timeout"
    assert after < PATIENCE_S


def test_a_silent_connection_is_closed(api_port: int) -> None:
    with connect(api_port) as sock:
        start = time.monotonic()
        assert read_response(sock, timeout_s=PATIENCE_S) == b""
    assert time.monotonic() - start < PATIENCE_S


def test_a_keep_alive_connection_waits_between_requests(api_port: int) -> None:
    """The read deadline runs from a request's first byte: idling between requests longer
    than it (within uvicorn's keep-alive) is fine."""
    conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=PATIENCE_S)
    try:
        socks = []
        for _ in range(2):
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
            assert answer.status == 200 and answer.read() == b'{"status":"ok"}'
            socks.append(conn.sock)
            time.sleep(READ_TIMEOUT_S * 1.5)
        assert socks[0] is socks[1]  # one connection all along
    finally:
        conn.close()


# ---- malformed requests --------------------------------------------------------------------

H = b"Host: 127.0.0.1\r\nConnection: close\r\n"
MALFORMED = {
    "garbage": b"GARBAGE\r\n\r\n",
    "bad-method": b"G@T / HTTP/1.1\r\n" + H + b"\r\n",
    "bad-version": b"GET / HTTP/9.9\r\n" + H + b"\r\n",
    "space-in-header-name": b"GET / HTTP/1.1\r\n" + H + b"Bad Name: y\r\n\r\n",
    "control-in-header-value": b"GET / HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n",
    "bad-content-length": b"POST /v1/jobs HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n",
    "two-content-lengths": (b"POST /v1/jobs HTTP/1.1\r\n" + H
                            + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
    "length-and-chunked": (b"POST /v1/jobs HTTP/1.1\r\n" + H
                           + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "bad-chunk": (b"POST /v1/jobs HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
    "non-ascii-path": b"GET /\xff HTTP/1.1\r\n" + H + b"\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: x\nConnection: close\n\n",
    "folded-header": b"GET /healthz HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n",
    "bad-range": b"GET /ui/static/dashboard.js HTTP/1.1\r\n" + H + b"Range: bytes=zz\r\n\r\n",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_every_malformed_request_gets_the_json_envelope(api_port: int, raw: bytes) -> None:
    with connect(api_port) as sock:
        sock.sendall(raw)
        answer = read_response(sock)
    error = envelope(answer, 400)
    assert error["code"] == "bad_request"
    assert error["message"]


def test_a_range_past_the_end_gets_the_json_envelope(api_port: int) -> None:
    with connect(api_port) as sock:
        sock.sendall(request("/ui/static/favicon.svg", b"Range: bytes=99999999-\r\n"))
        answer = read_response(sock)
    assert envelope(answer, 416)["code"] == "range_not_satisfiable"
    assert parse(answer)[1]["content-range"].startswith("bytes */")


# ---- a 500 keeps the connection ------------------------------------------------------------

@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[int]:
    """The app behind a real uvicorn, configured as `conveyor api` configures it."""
    port = free_port()
    options = server_options(settings_for("unused"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False,
                                           **options))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        assert not thread.is_alive(), "server did not stop"


def test_a_500_keeps_the_keep_alive_connection(caplog: pytest.LogCaptureFixture) -> None:
    prefix = new_prefix()
    app = create_app(settings=settings_for(prefix))

    @app.get("/test-only/boom")
    async def boom() -> None:  # a bug in a route: the exception escapes every handler
        raise RuntimeError("boom")

    caplog.set_level(logging.INFO)
    with serve_in_thread(app) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PATIENCE_S)
        try:
            conn.request("GET", "/test-only/boom")
            failed = conn.getresponse()
            doc = json.loads(failed.read())
            assert failed.status == 500
            assert doc["error"]["code"] == "internal_error"
            assert failed.getheader("connection") != "close"
            sock = conn.sock
            conn.request("GET", "/healthz")  # same connection: the server kept it
            ok = conn.getresponse()
            assert ok.status == 200 and json.loads(ok.read()) == {"status": "ok"}
            assert conn.sock is sock
        finally:
            conn.close()
    unhandled = [r for r in caplog.records if r.getMessage() == "api_unhandled_error"]
    assert len(unhandled) == 1 and unhandled[0].exc_info
    assert not [r for r in caplog.records if "Exception in ASGI" in r.getMessage()]
