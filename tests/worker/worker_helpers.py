"""Helpers shared by the worker tests (a plain module: test files import it by name); the
in-process Worker, its settings and the polls are `support`'s."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

QUEUE = "q"

#: the `run_worker` fixture: `async with run_worker(concurrency=4) as worker: ...`
RunWorker = Callable[..., Any]
#: the `own_redis` fixture: `await own_redis("--proto-max-bulk-len", "1mb")` starts a private
#: redis-server with that config and returns a connected broker on it
OwnRedis = Callable[..., Awaitable[Any]]
