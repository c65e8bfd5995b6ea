"""Redis unreachable: 503 `broker_unavailable` with Retry-After, never a 2xx for a job that
was not stored, and recovery once Redis answers again (through a proxy the test cuts)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from conveyor.client import AsyncConveyor
from conveyor.web import create_app
from tests.api.api_support import settings_for
from tests.support.asgi import error_of, serve
from tests.support.env import REDIS_URL
from tests.support.keys import prefix_keys

JOB_ID = "default:" + "0" * 32


def unused_port() -> int:
    """A port nothing listens on (bound, then released; the kernel does not reuse it soon)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    """A TCP proxy to Redis that the test can cut (closing every connection) and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def down_api(prefix: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API started while its broker is unreachable (nothing listens on the port)."""
    url = f"redis://127.0.0.1:{unused_port()}/0"
    app = create_app(settings=settings_for(prefix, broker_url=url))
    async with serve(app) as http:
        yield http


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/jobs", {"type": "fake"}),
    ("POST", "/v1/jobs/batch", {"jobs": [{"type": "fake"}]}),
    ("GET", f"/v1/jobs/{JOB_ID}", None),
    ("GET", "/v1/jobs", None),
    ("POST", f"/v1/jobs/{JOB_ID}/retry", None),
    ("GET", "/v1/queues", None),
    ("GET", "/v1/dlq", None),
    ("GET", "/v1/workers", None),
    ("GET", "/readyz", None),
])
async def test_broker_down_is_503_with_retry_after(
    down_api: httpx.AsyncClient, prefix: str, method: str, path: str, body: object
) -> None:
    r = await down_api.request(method, path, json=body)
    assert r.status_code == 503, r.text
    assert error_of(r)["code"] == "broker_unavailable"
    assert int(r.headers["retry-after"]) > 0
    assert await prefix_keys(prefix) == []


async def test_process_stays_healthy_and_metrics_say_broker_down(
    down_api: httpx.AsyncClient,
) -> None:
    assert (await down_api.get("/healthz")).status_code == 200
    metrics = await down_api.get("/metrics")
    assert metrics.status_code == 200
    assert "conveyor_broker_up 0.0" in metrics.text


async def test_redis_cut_then_back(prefix: str) -> None:
    target = urlsplit(REDIS_URL)
    proxy = Proxy((target.hostname or "127.0.0.1", target.port or 6379))
    await proxy.start()
    client = AsyncConveyor.from_url(f"redis://127.0.0.1:{proxy.port}/0", key_prefix=prefix)
    direct = AsyncConveyor.from_url(REDIS_URL, key_prefix=prefix)
    try:
        async with serve(create_app(client, settings_for(prefix))) as api:
            first = await api.post("/v1/jobs", json={"type": "fake"})
            assert first.status_code == 201, first.text

            await proxy.cut()
            for _ in range(3):
                r = await api.post("/v1/jobs", json={"type": "fake"})
                assert r.status_code == 503, r.text
                assert error_of(r)["code"] == "broker_unavailable"
                assert "retry-after" in r.headers
            batch = await api.post("/v1/jobs/batch", json={"jobs": [{"type": "fake"}] * 3})
            assert batch.status_code == 503
            assert (await api.get("/readyz")).status_code == 503
            assert (await direct.stats())["default"]["queued"] == 1  # only the 201 was stored

            await proxy.start()  # same port again
            again = await api.post("/v1/jobs", json={"type": "fake"})
            assert again.status_code == 201, again.text
            assert (await api.get("/readyz")).status_code == 200
            assert (await direct.stats())["default"]["queued"] == 2
    finally:
        await proxy.cut()
        await client.close()
        await direct.close()
