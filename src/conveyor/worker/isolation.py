"""`@handler(..., isolation="process")`: a sync handler run in a child process of its own,
killed (SIGKILL) on timeout, lease loss or shutdown. A thread cannot be stopped; a process can.

Children fork from multiprocessing's fork server (one clean, single-threaded process per
worker, started once with conveyor preloaded), so a job costs a fork, not an interpreter
start. The function, payload and context go over pickled (they must be importable at module
level); the result comes back as JSON text (never over the size cap), an exception as its
kind, code, message and formatted traceback, rebuilt in the worker so the retry policy reads
it as usual. A child outliving its worker exits on its own: it watches its parent.
The lines the handler writes through `ctx.logger` come back with the outcome (at most a
buffer's worth), to be kept with the job like any handler's; a killed child's are lost.
`ctx.progress` in the child is validated there (a bad value raises in the handler) and sent
up the same pipe ahead of the outcome; the worker hands each report to the job's
`ProgressReporter` like an in-process handler's (fenced, throttled, the last value lands).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

from conveyor.brokers.base import check_progress
from conveyor.errors import ConveyorError, JobError, JobTimeout, PermanentError, RetryLater
from conveyor.handlers import JobContext
from conveyor.handlers.context import JOB_LOGGER_NAME
from conveyor.joblogs import JobLogger, LogBuffer
from conveyor.logging import configure_logging, job_context
from conveyor.worker.safety import exc_code, exc_message, exc_traceback

_mp = multiprocessing.get_context("forkserver")
#: How long a killed child gets to be reaped before the worker stops waiting for it.
REAP_WAIT_S = 5.0
PARENT_POLL_S = 1.0

log = logging.getLogger("conveyor.worker.isolation")


@dataclass(frozen=True, slots=True)
class Serialized:
    """A result already turned into JSON by the child; `data` is None when it was over the
    cap (only its size crossed the pipe)."""

    data: bytes | None
    size: int


@dataclass(frozen=True, slots=True)
class ChildConfig:
    max_result_bytes: int
    log_level: str
    log_format: str


def prepare(modules: Iterable[str] = ()) -> None:
    """Start the fork server with conveyor and `modules` (the handlers' own) imported, so a
    child starts with them loaded. Blocking, about a Python start: run it off the loop."""
    from multiprocessing import forkserver

    # this module too: each child runs `_child` from it, and importing it (with the worker
    # package around it) in every child cost a good part of its start
    _mp.set_forkserver_preload(["conveyor.handlers", "conveyor.worker.isolation", *modules])
    forkserver.ensure_running()


# --- in the child -----------------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)  # the fork server (and so the worker) is gone


def _describe(exc: BaseException) -> dict[str, Any]:
    kind = ("permanent" if isinstance(exc, PermanentError)
            else "retry_later" if isinstance(exc, RetryLater) else "error")
    return {"kind": kind, "code": exc_code(exc), "message": exc_message(exc),
            "traceback": exc_traceback(exc), "delay_s": getattr(exc, "delay_s", None)}


def _reporter(conn: Connection) -> Callable[[float, str | None], None]:
    """`ctx.progress` in the child: checked here, sent to the worker (one message a report;
    the worker throttles). Safe from the handler's own threads."""
    lock = threading.Lock()

    def report(value: float, message: str | None) -> None:
        check_progress(value, message)
        with lock:
            conn.send(("progress", float(value), message))

    return report


def _child(conn: Connection, func: Callable[..., Any], args: tuple[Any, ...],
           ctx: JobContext, config: ChildConfig) -> None:
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    configure_logging(config.log_level, config.log_format)
    buf = LogBuffer(ctx.job_id, ctx.lease_token, ctx.attempt)
    logged = dataclasses.replace(ctx, logger=JobLogger(logging.getLogger(JOB_LOGGER_NAME), buf),
                                 reporter=_reporter(conn))
    args = tuple(logged if arg is ctx else arg for arg in args)
    with job_context(ctx.job_id, ctx.type, attempt=ctx.attempt):
        try:
            result = func(*args)
        except BaseException as exc:
            conn.send(("error", _describe(exc), buf.take()))
            return
        try:
            data = to_json(result)
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            err = PermanentError(
                f"handler result is not JSON-serialisable ({type(result).__name__}): {exc}",
                code="handler_error",
            )
            conn.send(("error", _describe(err), buf.take()))
            return
        too_big = len(data) > config.max_result_bytes
        conn.send(("ok", None if too_big else data, len(data), buf.take()))


# --- in the worker ----------------------------------------------------------------------------


def _rebuild(info: dict[str, Any]) -> ConveyorError:
    message, code = str(info["message"]), str(info["code"])
    exc: ConveyorError
    if info["kind"] == "permanent":
        exc = PermanentError(message, code=code)
    elif info["kind"] == "retry_later":
        exc = RetryLater(float(info["delay_s"] or 0.0), message, code=code)
    else:
        exc = JobError(message, code=code)
    vars(exc)["remote_traceback"] = str(info["traceback"])  # read by exc_traceback
    return exc


async def _readable(fds: Iterable[int]) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    watched = list(fds)
    for fd in watched:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        for fd in watched:
            loop.remove_reader(fd)


async def _receive(reader: Connection, proc: Any,
                   on_progress: Callable[[float, str | None], None] | None) -> Any:
    """The child's outcome, or None if it died without sending one; its progress reports
    on the way go to `on_progress`."""
    while True:
        await _readable([reader.fileno(), proc.sentinel])
        while reader.poll():
            try:
                message = reader.recv()
            except (EOFError, OSError):
                return None
            if message[0] != "progress":
                return message
            if on_progress is not None:
                try:
                    on_progress(message[1], message[2])
                except ConveyorError as exc:  # checked in the child: only by damage
                    log.warning("progress_dropped", extra={"error": str(exc)[:200]})
        if proc.exitcode is not None:
            return None


async def _stop(proc: Any) -> int | None:
    """Kill the child if it still runs, reap it; returns its exit code."""
    if proc.exitcode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REAP_WAIT_S):
                await _readable([proc.sentinel])
    proc.join(0)
    code: int | None = proc.exitcode
    if code is not None:
        proc.close()
    return code


async def run_in_process(
    func: Callable[..., Any], args: tuple[Any, ...], ctx: JobContext, *,
    timeout_s: float | None, config: ChildConfig,
    on_lines: Callable[[list[str]], None] | None = None,
    on_progress: Callable[[float, str | None], None] | None = None,
) -> Serialized:
    """Run `func(*args)` in a child; raise what it raised (rebuilt), JobTimeout past
    `timeout_s` (the child is killed), or JobError if it died without an answer.
    `on_lines` gets the log lines the handler wrote (`ctx.logger`), whatever its outcome;
    `on_progress` each `ctx.progress` report, as it comes (on the loop)."""
    reader, writer = _mp.Pipe(duplex=False)
    proc = _mp.Process(target=_child, args=(writer, func, args, ctx, config), daemon=True,
                       name=f"conveyor-job {ctx.job_id}")
    try:
        proc.start()  # pickles func, payload and ctx: they must be importable
    finally:
        writer.close()
    try:
        async with asyncio.timeout(timeout_s) as deadline:
            message = await _receive(reader, proc, on_progress)
    except TimeoutError as exc:
        if deadline.expired():
            raise JobTimeout(f"job timed out after {timeout_s:g}s (process killed)") from exc
        raise
    finally:
        reader.close()
        exit_code = await _stop(proc)
    if message is None:
        raise JobError(f"handler process exited with code {exit_code} without an outcome")
    lines = message[-1]
    if on_lines is not None and isinstance(lines, list):
        on_lines([line for line in lines if isinstance(line, str)])
    if message[0] == "ok":
        return Serialized(message[1], int(message[2]))
    raise _rebuild(message[1])
