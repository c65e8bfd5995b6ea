"""Fixtures of the Redis-server fault tests (issue 11, items 6-8): a redis-server each test
owns, on a free port with its data in `tmp_path`, which the test may stall (SIGSTOP), fill
(tiny `maxmemory`) or reconfigure (CONFIG SET); the shared Redis on 6379 is never touched.
Teardown resumes a stopped server and stops it by its pid.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.ops.ops_support import StartServer, unstall
from tests.support.redis_server import RedisServer, redis_server_binary


@pytest.fixture(autouse=True)
def _no_outer_conveyor_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("CONVEYOR_"):
            monkeypatch.delenv(key)
    yield


@pytest.fixture
async def redis_servers(tmp_path: Path) -> AsyncIterator[StartServer]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    started: list[RedisServer] = []

    async def start(*args: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}",
                             ("--appendonly", "yes", "--maxmemory-policy", "noeviction", *args))
        started.append(server)
        await server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            unstall(server)  # a stopped process would not see SIGTERM
            server.stop()
