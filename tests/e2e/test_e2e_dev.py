"""`conveyor dev` as a new user runs it: no broker URL, no Redis; the embedded SQLite file
appears in the working directory, a job posted over HTTP succeeds, Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port

pytestmark = pytest.mark.e2e


def test_dev_runs_api_and_worker_on_the_embedded_broker(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_LOG_LEVEL"] = "WARNING"
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "dev", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "conveyor dev did not start"
            time.sleep(0.05)
        posted = httpx.post(f"{base}/v1/jobs", json={
            "type": "fake", "payload": {"duration_ms": 20, "result": {"ok": True}},
        }, timeout=5)
        assert posted.status_code == 201, posted.text
        job_id = posted.json()["id"]
        while True:
            job = httpx.get(f"{base}/v1/jobs/{job_id}", timeout=5).json()
            if job["state"] == "succeeded":
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.02)
        assert job["result"] == {"ok": True}
        assert job["attempts"] == 1
        # Served by the same HTTP protocol as `conveyor api`: a malformed request gets the envelope.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GARBAGE\r\n\r\n")
            answer = sock.recv(65536)
        assert b"content-type: application/json" in answer, answer
        assert b'"code":"bad_request"' in answer, answer
        assert (tmp_path / "conveyor.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert f"API docs   {base}/docs" in err
    assert "second stop" not in err
