"""Helpers of the API tests: settings for a key prefix, error envelopes, and raw sockets
against a real server (readiness, reading until the server closes). The Redis URL, the
in-process client of an app, key listing and free ports are `support`'s."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from conveyor.settings import Settings
from tests.support.asgi import error_of
from tests.support.env import REDIS_URL


def settings_for(prefix: str, **kw: Any) -> Settings:
    return Settings(broker_url=kw.pop("broker_url", REDIS_URL), key_prefix=prefix, **kw)


def locs(response: httpx.Response) -> list[list[Any]]:
    return [d["loc"] for d in error_of(response)["details"]]


def wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"conveyor api exited {proc.returncode}:\n{log.read_text()}"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"conveyor api not ready within 30 s:\n{log.read_text()}")


def read_response(sock: socket.socket, timeout_s: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout_s)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data
