"""Helpers of the Redis-server fault tests (a plain module: test files import it by name);
the server is `support.redis_server`'s."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

from tests.support.redis_server import RedisServer

#: `await redis_servers("--maxmemory", "2mb")`: a started server with these extra arguments
StartServer = Callable[..., Awaitable[RedisServer]]


def stall(server: RedisServer) -> None:
    """SIGSTOP: the process holds its sockets open and answers nothing."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)


def unstall(server: RedisServer) -> None:
    if server.proc is not None and server.proc.poll() is None:
        server.proc.send_signal(signal.SIGCONT)
