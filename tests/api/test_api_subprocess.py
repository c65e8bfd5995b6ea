"""`conveyor api` as users run it: a real uvicorn process on a free port, with keys, an `--app`
module from the cwd, body limits over real sockets, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from tests.api.api_support import read_response, wait_ready
from tests.support.env import REDIS_URL
from tests.support.processes import free_port

SCRIPT = str(Path(sys.executable).parent / "conveyor")
KEY = "s3cret-key"
LIMIT = 65536



def test_conveyor_api_end_to_end(prefix: str, tmp_path: Path) -> None:
    module = f"cvt_api_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from pydantic import BaseModel\n"
        "from conveyor.handlers import handler\n\n"
        "class Greeting(BaseModel):\n    who: str\n\n"
        f"@handler({module + '.greet'!r}, payload=Greeting, max_attempts=7)\n"
        "def greet(payload: Greeting) -> str:\n    return 'hi ' + payload.who\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_API_KEYS=KEY, CONVEYOR_MAX_BODY_BYTES=str(LIMIT),
               CONVEYOR_LOG_FORMAT="text")
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [SCRIPT, "--broker-url", REDIS_URL, "--key-prefix", prefix, "api",
             "--host", "127.0.0.1", "--port", str(port), "--app", module],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(proc, base, log_path)
            auth = {"Authorization": f"Bearer {KEY}"}
            with httpx.Client(base_url=base, timeout=10) as http:
                assert http.post("/v1/jobs", json={"type": "fake"}).status_code == 401
                body = {"type": f"{module}.greet", "payload": {"who": "you"}}
                created = http.post("/v1/jobs", json=body, headers=auth)
                assert created.status_code == 201, created.text
                job = created.json()
                assert job["max_attempts"] == 7
                assert http.get(f"/v1/jobs/{job['id']}", headers=auth).json() == job
                bad = http.post("/v1/jobs", json={**body, "payload": {"who": 3}}, headers=auth)
                assert bad.status_code == 422
                assert bad.json()["error"]["details"][0]["loc"] == ["body", "payload", "who"]
                assert http.get("/openapi.json").status_code == 200

            # A declared length over the limit: 413 without sending a byte of the body.
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + KEY.encode() + b"\r\n"
                    b"Content-Length: 10485760\r\n\r\n"
                )
                answer = read_response(sock)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert b'"code":"payload_too_large"' in answer

            # A chunked body with no length, never finished: answered 413 once it passes the
            # limit, without waiting for its end. (No more is sent than that: bytes the server
            # never reads would make its close a reset, which can drop the answer in transit.)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + KEY.encode() + b"\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                chunk = b" " * (LIMIT // 4)
                for _ in range(5):  # 5/4 of the limit, and no final 0-length chunk
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                answer = read_response(sock)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert b'"code":"payload_too_large"' in answer

            proc.send_signal(signal.SIGTERM)
            # uvicorn stops gracefully, then re-raises the signal it caught (exit -SIGTERM), as
            # a supervisor expects of a process stopped by a signal.
            assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log_path.read_text()
    assert "Application startup complete" in text
    assert "Application shutdown complete" in text
    assert "api_auth_disabled" not in text
    assert "Traceback" not in text


def test_conveyor_api_refuses_a_bad_app_module(prefix: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    done = subprocess.run(
        [SCRIPT, "--broker-url", REDIS_URL, "--key-prefix", prefix, "api",
         "--port", str(free_port()), "--app", "cvt_no_such_module_here"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "cannot import handler module 'cvt_no_such_module_here'" in done.stderr
