"""Helpers of the API tests: the Redis URL, settings for a key prefix, an in-process client of
an app (lifespan run, requests through ASGI), key counting for "nothing was stored", and raw
sockets against a real server (free ports, readiness, reading until the server closes)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from conveyor.settings import Settings

REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BASE_URL = "http://testserver"


def settings_for(prefix: str, **kw: Any) -> Settings:
    return Settings(broker_url=kw.pop("broker_url", REDIS_URL), key_prefix=prefix, **kw)


@asynccontextmanager
async def serve(app: FastAPI, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield an HTTP client talking to it through ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers=headers
        ) as http:
            yield http


async def prefix_keys(prefix: str) -> list[str]:
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
    finally:
        await redis.aclose()


async def delete_prefix(prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 500):
            await redis.delete(*keys[start : start + 500])
    finally:
        await redis.aclose()


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error envelope's body, after checking the envelope's shape."""
    doc = response.json()
    assert set(doc) == {"error"}, doc
    assert set(doc["error"]) == {"code", "message", "details"}, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    error: dict[str, Any] = doc["error"]
    return error


def locs(response: httpx.Response) -> list[list[Any]]:
    return [d["loc"] for d in error_of(response)["details"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
