"""Fixtures of the API tests (the key prefix is the root conftest's): a connected client, and
the app served in-process through ASGI, with and without the POST /v1/jobs fast path where
both must behave alike.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.client import AsyncConveyor
from conveyor.web import create_app
from tests.api.api_support import settings_for
from tests.support.asgi import serve
from tests.support.env import REDIS_URL


@pytest.fixture(autouse=True)
def _no_outer_conveyor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test, never from the shell that runs pytest."""
    for key in list(os.environ):
        if key.startswith("CONVEYOR_"):
            monkeypatch.delenv(key)


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
