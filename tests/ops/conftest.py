"""Fixtures of the Redis-server fault tests (issue 11, items 6-8): a redis-server each test
owns, on a free port with its data in `tmp_path`, which the test may stall (SIGSTOP), fill
(tiny `maxmemory`) or reconfigure (CONFIG SET); the shared Redis on 6379 is never touched.
Teardown resumes a stopped server and stops it by its pid.

The server itself is the fault suite's `tests/chaos/redis_server.py`, imported from there.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(_TESTS / "chaos"), str(_TESTS / "api")]  # redis_server, api_support

from redis_server import RedisServer, redis_server_binary  # noqa: E402

#: `await redis_servers("--maxmemory", "2mb")`: a started server with these extra arguments
StartServer = Callable[..., Awaitable[RedisServer]]


@pytest.fixture(autouse=True)
def _no_outer_conveyor_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("CONVEYOR_"):
            monkeypatch.delenv(key)
    yield


def stall(server: RedisServer) -> None:
    """SIGSTOP: the process holds its sockets open and answers nothing."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)


def unstall(server: RedisServer) -> None:
    if server.proc is not None and server.proc.poll() is None:
        server.proc.send_signal(signal.SIGCONT)


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
