"""An application served in this process: its lifespan run, requests through ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

BASE_URL = "http://testserver"


@asynccontextmanager
async def serve(
    app: FastAPI, *, headers: Mapping[str, str] | None = None, timeout_s: float = 5.0
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield an HTTP client talking to it through ASGI (sending
    `headers` with every request)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers=headers, timeout=timeout_s
        ) as http:
            yield http


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error envelope's body, after checking the envelope's shape."""
    doc = response.json()
    assert set(doc) == {"error"}, doc
    assert set(doc["error"]) == {"code", "message", "details"}, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    error: dict[str, Any] = doc["error"]
    return error
