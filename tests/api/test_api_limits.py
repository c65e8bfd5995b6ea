"""Bodies over `CONVEYOR_MAX_BODY_BYTES` are refused with 413 before they are read whole:
a declared Content-Length at once, a chunked body as soon as it passes the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.client import AsyncConveyor
from conveyor.web import create_app
from tests.api.api_support import settings_for
from tests.support.asgi import error_of, serve
from tests.support.keys import prefix_keys

LIMIT = 4096
CHUNK = 1024


@pytest.fixture(params=[True, False], ids=["fast-path", "fastapi-route"])
async def small_api(
    request: pytest.FixtureRequest, prefix: str, conveyor: AsyncConveyor
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(conveyor, settings_for(prefix, max_body_bytes=LIMIT),
                     fast_path=request.param)
    async with serve(app) as http:
        yield http


class Chunks:
    """A chunked request body that counts how much of it the server pulled."""

    def __init__(self, head: bytes, count: int) -> None:
        self.head = head
        self.count = count
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.head
        for _ in range(self.count):
            self.sent += 1
            yield b" " * CHUNK


def padded_job(size: int) -> bytes:
    body = b'{"type": "fake", "payload": {"result": "'
    tail = b'"}}'
    return body + b"x" * (size - len(body) - len(tail)) + tail


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/batch"])
async def test_declared_length_over_the_limit_is_413(
    small_api: httpx.AsyncClient, prefix: str, path: str
) -> None:
    r = await small_api.post(path, content=padded_job(LIMIT + 1),
                             headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    err = error_of(r)
    assert err["code"] == "payload_too_large"
    assert err["details"] == {"limit": LIMIT, "content_length": LIMIT + 1}
    assert r.headers["connection"] == "close"
    assert await prefix_keys(prefix) == []


async def test_body_at_the_limit_is_accepted(small_api: httpx.AsyncClient) -> None:
    r = await small_api.post("/v1/jobs", content=padded_job(LIMIT),
                             headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/batch"])
async def test_chunked_body_is_refused_before_the_end(
    small_api: httpx.AsyncClient, prefix: str, path: str
) -> None:
    body = Chunks(b'{"type": "fake", "payload": {}, "x": "', count=1000)  # ~1 MiB
    r = await small_api.post(path, content=body,
                             headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert error_of(r)["code"] == "payload_too_large"
    # Refused once past the limit: the rest (about a megabyte) was never pulled.
    assert body.sent <= LIMIT // CHUNK + 1
    assert await prefix_keys(prefix) == []


async def test_small_chunked_body_goes_through(small_api: httpx.AsyncClient) -> None:
    async def one_job() -> AsyncIterator[bytes]:
        yield b'{"type": "fake", '
        yield b'"payload": {"result": "chunked"}}'

    r = await small_api.post("/v1/jobs", content=one_job(),
                             headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["payload"]["result"] == "chunked"

    async def batch() -> AsyncIterator[bytes]:
        yield b'{"jobs": [{"type": "fake"},'
        yield b' {"type": "fake"}]}'

    r = await small_api.post("/v1/jobs/batch", content=batch(),
                             headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["created"] == [True, True]


async def test_default_limit_is_one_mebibyte(api: httpx.AsyncClient, prefix: str) -> None:
    r = await api.post("/v1/jobs", content=padded_job(1024 * 1024 + 1),
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert error_of(r)["details"]["limit"] == 1024 * 1024
    assert await prefix_keys(prefix) == []
