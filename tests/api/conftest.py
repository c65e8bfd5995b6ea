"""Fixtures of the API tests: a key prefix of their own on the real Redis (deleted after each
test), a connected client, and the app served in-process through ASGI, with and without the
POST /v1/jobs fast path where both must behave alike.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from api_support import REDIS_URL, delete_prefix, serve, settings_for

from conveyor.client import AsyncConveyor
from conveyor.web import create_app


@pytest.fixture(autouse=True)
def _no_outer_conveyor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test, never from the shell that runs pytest."""
    for key in list(os.environ):
        if key.startswith("CONVEYOR_"):
            monkeypatch.delenv(key)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"cvt-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        await delete_prefix(name)


@pytest.fixture
async def conveyor(prefix: str) -> AsyncIterator[AsyncConveyor]:
    client = AsyncConveyor.from_url(REDIS_URL, key_prefix=prefix)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def api(prefix: str, conveyor: AsyncConveyor) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(conveyor, settings_for(prefix))) as http:
        yield http


@pytest.fixture(params=["fast-path", "fastapi-route"])
async def enqueue_api(
    request: pytest.FixtureRequest, prefix: str, conveyor: AsyncConveyor
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with POST /v1/jobs on the fast path, then on the FastAPI route."""
    app = create_app(conveyor, settings_for(prefix), fast_path=request.param == "fast-path")
    async with serve(app) as http:
        yield http
