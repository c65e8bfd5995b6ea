"""Helpers of the Redis-server fault tests (a plain module: test files import it by name).

The server is the fault suite's `tests/chaos/redis_server.py` and the in-process API client
is `tests/api/api_support.py`'s: both folders go on sys.path here.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent
for _folder in ("chaos", "api"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / _folder))

from redis_server import RedisServer  # noqa: E402

#: `await redis_servers("--maxmemory", "2mb")`: a started server with these extra arguments
StartServer = Callable[..., Awaitable[RedisServer]]


def stall(server: RedisServer) -> None:
    """SIGSTOP: the process holds its sockets open and answers nothing."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)


def unstall(server: RedisServer) -> None:
    if server.proc is not None and server.proc.poll() is None:
        server.proc.send_signal(signal.SIGCONT)
