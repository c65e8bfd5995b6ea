"""Module-level sync handlers for the process-isolation tests: a child process finds them by
name. Plain functions: each test registers them in its own registry."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from conveyor.errors import JobError, PermanentError, RetryLater
from conveyor.handlers import JobContext


def hang(payload: dict[str, Any], ctx: JobContext) -> None:
    """Write the child's pid, then hang far past any timeout."""
    Path(payload["pidfile"]).write_text(str(os.getpid()))
    time.sleep(120)


def echo(payload: Any, ctx: JobContext) -> dict[str, Any]:
    return {"payload": payload, "pid": os.getpid(), "attempt": ctx.attempt, "job": ctx.job_id}


def fail(payload: str) -> None:
    if payload == "permanent":
        raise PermanentError("no such account", code="account_missing")
    if payload == "later":
        raise RetryLater(0.05, "come back soon")
    if payload == "exit":
        raise SystemExit(4)
    raise JobError("flaky upstream", code="upstream")


def die(payload: int) -> None:
    os._exit(payload)


def big(payload: int) -> str:
    return "b" * payload


def chatty(payload: dict[str, Any], ctx: JobContext) -> int:
    """Log each of payload["lines"] through ctx.logger; fail the first attempt if asked."""
    for line in payload["lines"]:
        ctx.logger.info("%s (pid %d)", line, os.getpid())
    if payload.get("fail_first") and ctx.attempt == 1:
        raise JobError("first attempt fails")
    return ctx.attempt


def steps(payload: dict[str, Any], ctx: JobContext) -> int:
    """Report progress payload["steps"] times in a burst (a value after the last, if asked)."""
    n = int(payload["steps"])
    for i in range(1, n + 1):
        ctx.progress(i / n, f"step {i} (pid {os.getpid()})")
    if "bad" in payload:
        ctx.progress(float(payload["bad"]))
    return os.getpid()
