"""Run one delivery and turn how it ended into an outcome for the broker (ack or fail).

The executor never talks to the broker: it returns an `AckItem` or a `FailItem` and the
completions batcher sends them in bulk. Whatever a handler raises (`SystemExit`,
`KeyboardInterrupt`, its own `CancelledError` included) is that job's failure; only the
worker's own cancellation (lease lost, shutdown) propagates, and the runner decides what
happens to the lease then. A result over `max_result_bytes` fails its job `result_too_large`.

A sync handler runs in a thread, and a thread cannot be killed: on timeout the job is failed,
but the thread runs on until the handler returns. Such a stray thread keeps its slot (see
`stray_threads`), so the worker never leases a job it has no thread to start; a job's timeout
runs from when its handler starts. `isolation="process"` runs a sync handler in a child
process that is killed instead (`worker/isolation.py`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticSerializationError, from_json, to_json

from conveyor import tracing
from conveyor.brokers.base import AckItem, Broker, FailItem
from conveyor.errors import (
    ConveyorError,
    ErrorCode,
    JobTimeout,
    RateLimited,
    UnknownJobType,
    ValidationError,
)
from conveyor.handlers import HandlerSpec, JobContext, Registry
from conveyor.joblogs import JobLogger
from conveyor.jobs import Delivery
from conveyor.logging import get_logger, job_context
from conveyor.retry import ExponentialBackoff
from conveyor.settings import Settings, get_settings
from conveyor.worker import isolation
from conveyor.worker.log_shipper import LogShipper
from conveyor.worker.progress import ProgressReporter
from conveyor.worker.safety import (
    TRACEBACK_LIMIT,
    exc_code,
    exc_message,
    exc_traceback,
    safe_text,
    truncate_tail,
)


@dataclass(frozen=True, slots=True)
class Hold:
    """The handler raised RateLimited: release the job (attempt not charged) and hold its
    limit key for `hold_ms` (flow control)."""

    job_id: str
    token: str
    hold_ms: int


Outcome = AckItem | FailItem | Hold

#: A job of a type this worker does not know is retried with this backoff (attempts charged,
#: so it ends DEAD after max_attempts), giving a worker that knows the type time to take it.
UNKNOWN_TYPE_BACKOFF = ExponentialBackoff(base_s=5.0, cap_s=300.0)
KNOWN_TYPES_SHOWN = 20

log = get_logger("conveyor.worker.executor")
job_log = get_logger("conveyor.job")

__all__ = ["TRACEBACK_LIMIT", "Executor", "Hold", "Outcome", "truncate_tail"]


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved: an abandoned call's error is not logged as unhandled


#: JSON shorter than this cannot hold an integer past Python's 4,300-digit conversion limit
_READABLE_WITHOUT_CHECK = 4300


def _reads_back(data: bytes) -> bool:
    try:
        from_json(data)
    except ValueError:
        return False
    return True


def _keep(logs: LogShipper, d: Delivery, lines: list[str]) -> None:
    """Lines a process-isolated handler's child sent back, into the delivery's buffer."""
    if lines and (buf := logs.open(d)) is not None:
        buf.extend(lines)


class Executor:
    """Runs handlers: async ones on the loop, sync ones in a pool sized to the concurrency
    (or, when declared so, in a child process each)."""

    def __init__(
        self,
        registry: Registry,
        *,
        worker_id: str,
        concurrency: int,
        settings: Settings | None = None,
        on_capacity: Callable[[], None] | None = None,
        logs: LogShipper | None = None,
        broker: Broker | None = None,
    ) -> None:
        settings = settings or get_settings()
        #: where `ctx.logger` keeps a job's lines (None: the process log only)
        self._logs = logs
        self._registry = registry
        self._worker_id = worker_id
        self._host = socket.gethostname()
        self._max_result_bytes = settings.max_result_bytes
        self._child = isolation.ChildConfig(
            settings.max_result_bytes, settings.log_level, settings.log_format
        )
        self._on_capacity = on_capacity
        #: where `ctx.progress` writes (None: progress reports are dropped)
        self._broker = broker
        self._reporters: dict[str, ProgressReporter] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, concurrency), thread_name_prefix="conveyor-job"
        )
        #: threads still running a handler whose job already ended (timeout, cancel)
        self.stray_threads = 0

    async def start(self) -> None:
        """Start the fork server first if some handler runs in a process (seconds, once)."""
        specs = [self._registry.get(t) for t in self._registry.types()]
        modules = {str(s.func.__module__) for s in specs if s.isolation == "process"}
        if modules:
            await asyncio.get_running_loop().run_in_executor(
                None, isolation.prepare, sorted(modules)
            )

    def shutdown(self) -> None:
        """Drop queued sync calls; threads already running finish on their own (see above)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def execute(
        self, delivery: Delivery, cancel_event: threading.Event | None = None,
        log_fields: Mapping[str, str] | None = None,
    ) -> Outcome:
        """`cancel_event`: set by the runner when an operator cancels the job; handlers read
        it as `ctx.cancelled`. `log_fields`: the attempt span's ids for its log lines (else
        those of the current span, if any)."""
        if log_fields is None:
            log_fields = tracing.log_fields()
        with job_context(delivery.job_id, delivery.type, attempt=delivery.attempts,
                         **log_fields):
            return await self._execute(delivery, cancel_event)

    async def _execute(self, d: Delivery, cancel_event: threading.Event | None = None
                       ) -> Outcome:
        try:
            spec = self._registry.get(d.type)
        except UnknownJobType:
            return self._unknown_type(d)
        try:
            payload = spec.parse_payload(d.payload_json)
        except ValidationError as exc:
            return self._failed(d, exc, exc.code, None, 0.0)

        timeout_s = d.timeout_s if d.timeout_s is not None else spec.timeout_s
        log.debug("job_started", extra={"queue": d.queue, "max_attempts": d.max_attempts})
        started = time.perf_counter()
        reporter = None
        if self._broker is not None:
            reporter = self._reporters[d.job_id] = ProgressReporter(self._broker, d.job_id,
                                                                    d.token)
        try:
            result = await self._call(spec, d, payload, timeout_s, cancel_event)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the worker's own cancellation: lease lost or shutdown
            return self._handler_raised(spec, d, exc, started)  # raised by the handler
        except RateLimited as exc:
            job_log.info("job_rate_limited",
                         extra={"retry_after_s": exc.retry_after_s, "error": exc.message})
            return Hold(d.job_id, d.token, round(exc.retry_after_s * 1000))
        except BaseException as exc:
            return self._handler_raised(spec, d, exc, started)
        finally:
            if reporter is not None:
                self._reporters.pop(d.job_id, None)
                if not _cancelling():
                    await reporter.close()  # the last report lands before the outcome
        return self._succeeded(d, result, time.perf_counter() - started)

    def _handler_raised(
        self, spec: HandlerSpec, d: Delivery, exc: BaseException, started: float
    ) -> FailItem:
        return self._failed(
            d, exc, exc_code(exc), self._retry_delay(spec, d, exc), time.perf_counter() - started
        )

    def _succeeded(self, d: Delivery, result: Any, elapsed: float) -> Outcome:
        if isinstance(result, isolation.Serialized):
            data, size = result.data, result.size
        else:
            try:
                data = to_json(result)
            except (PydanticSerializationError, ValueError, TypeError) as exc:
                # Deterministic: running the handler again would fail the same way.
                err = ConveyorError(
                    f"handler result is not JSON-serialisable ({type(result).__name__}): {exc}",
                    code=ErrorCode.HANDLER_ERROR,
                )
                return self._failed(d, err, err.code, None, elapsed)
            size = len(data)
        if data is not None and size > _READABLE_WITHOUT_CHECK and not _reads_back(data):
            # e.g. an integer of 5,000 digits: serialisable, but no JSON reader takes it back,
            # so the stored job would read as corrupt. Deterministic, like the cases above.
            err = ConveyorError(
                "handler result is JSON that cannot be read back (an integer over 4,300 "
                "digits?): return big numbers as strings",
                code=ErrorCode.HANDLER_ERROR,
            )
            return self._failed(d, err, err.code, None, elapsed)
        if data is None or size > self._max_result_bytes:
            err = ConveyorError(
                f"result is {size} bytes of JSON, over CONVEYOR_MAX_RESULT_BYTES "
                f"({self._max_result_bytes}): store large results elsewhere and return a "
                "reference to them",
                code=ErrorCode.RESULT_TOO_LARGE,
            )
            return self._failed(d, err, err.code, None, elapsed)  # same work, same size
        job_log.info("job_succeeded", extra={"duration_ms": round(elapsed * 1000, 3)})
        return AckItem(d.job_id, d.token, data.decode())

    async def _call(
        self, spec: HandlerSpec, d: Delivery, payload: Any, timeout_s: float | None,
        cancel_event: threading.Event | None = None,
    ) -> Any:
        if spec.isolation == "process":
            # the context crosses to the child by pickle, so with a plain logger; the child
            # gives it one that keeps lines, and sends them back with the outcome; its
            # progress reports come up the same pipe, to this job's reporter.
            ctx = self._context(d, keep_lines=False, in_process=False)
            args = (payload, ctx) if spec.wants_ctx else (payload,)
            logs = self._logs
            reporter = self._reporters.get(d.job_id)
            return await isolation.run_in_process(
                spec.func, args, ctx, timeout_s=timeout_s, config=self._child,
                on_lines=None if logs is None else functools.partial(_keep, logs, d),
                on_progress=None if reporter is None else reporter.report,
            )
        call = self._bind(spec, d, payload, cancel_event)
        if not spec.is_async:
            return await self._call_in_thread(call, timeout_s)
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                return await call()
        except TimeoutError as exc:
            if deadline.expired():  # ours; a TimeoutError the handler raised stays as is
                raise JobTimeout(f"job timed out after {timeout_s:g}s") from exc
            raise

    async def _call_in_thread(self, call: Callable[[], Any], timeout_s: float | None) -> Any:
        """Run `call` on a pool thread; the timeout starts when the thread starts it."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()

        def mark_started() -> None:
            if not started.done():
                started.set_result(None)

        def run() -> Any:
            loop.call_soon_threadsafe(mark_started)
            return call()

        cfut = self._pool.submit(contextvars.copy_context().run, run)
        fut = asyncio.wrap_future(cfut)
        fut.add_done_callback(_consume)
        try:
            await asyncio.wait([started, fut], return_when=asyncio.FIRST_COMPLETED)
            async with asyncio.timeout(timeout_s) as deadline:
                return await asyncio.shield(fut)
        except TimeoutError as exc:
            if deadline.expired():
                raise JobTimeout(f"job timed out after {timeout_s:g}s") from exc
            raise
        finally:
            if not cfut.done() and not cfut.cancel():  # running: it cannot be stopped
                self._stray(cfut)

    def _stray(self, cfut: concurrent.futures.Future[Any]) -> None:
        self.stray_threads += 1
        job_log.warning(
            "sync_handler_still_running",
            extra={"stray_threads": self.stray_threads,
                   "detail": "its job ended; its thread keeps a slot until it returns"
                             " (isolation='process' makes a handler killable)"},
        )
        loop = asyncio.get_running_loop()

        def returned() -> None:
            self.stray_threads -= 1
            if self._on_capacity is not None:
                self._on_capacity()

        def on_done(_: concurrent.futures.Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
                loop.call_soon_threadsafe(returned)

        cfut.add_done_callback(on_done)

    def _context(
        self, d: Delivery, cancel_event: threading.Event | None = None, *,
        keep_lines: bool = True, in_process: bool = True,
    ) -> JobContext:
        logger: logging.Logger | logging.LoggerAdapter[Any] = job_log
        if keep_lines and self._logs is not None:
            logger = JobLogger(job_log, self._logs.opener(d))
        reporter = self._reporters.get(d.job_id) if in_process else None
        return JobContext(
            job_id=d.job_id,
            type=d.type,
            queue=d.queue,
            attempt=d.attempts,
            max_attempts=d.max_attempts,
            worker_id=self._worker_id,
            logger=logger,
            lease_token=d.token,
            cancel_event=cancel_event,
            reporter=reporter.report if reporter is not None else None,
        )

    def _bind(self, spec: HandlerSpec, d: Delivery, payload: Any,
              cancel_event: threading.Event | None = None) -> Callable[[], Any]:
        if not spec.wants_ctx:
            return functools.partial(spec.func, payload)
        return functools.partial(spec.func, payload, self._context(d, cancel_event))

    @staticmethod
    def _retry_delay(spec: HandlerSpec, d: Delivery, exc: BaseException) -> float | None:
        """The policy knows PermanentError (None) and RetryLater (its own delay)."""
        try:
            return spec.retry.next_delay_s(d.attempts, exc, max_attempts=d.max_attempts)
        except Exception:  # a user backoff that raises: retry on the default backoff
            log.exception("job_backoff_failed", extra={"job_type": spec.type})
            return ExponentialBackoff()(d.attempts) if d.attempts < d.max_attempts else None

    def _unknown_type(self, d: Delivery) -> FailItem:
        """Not this worker's type: say which worker lacked it and how to load handlers, and
        retry later (attempts charged) so a worker that knows the type can take it."""
        known = self._registry.types()
        shown = ", ".join(known[:KNOWN_TYPES_SHOWN]) + (
            " ..." if len(known) > KNOWN_TYPES_SHOWN else ""
        )
        type_name = safe_text(str(d.type)[:128])
        err = UnknownJobType(
            f"worker {self._worker_id} on host {self._host} has no handler for job type "
            f"{type_name!r} (it knows: {shown or 'none'}); start workers with --app "
            "(or CONVEYOR_APP) naming the module that defines it",
            details={"type": type_name, "worker_id": self._worker_id, "host": self._host},
        )
        delay = UNKNOWN_TYPE_BACKOFF(d.attempts) if d.attempts < d.max_attempts else None
        return self._failed(d, err, err.code, delay, 0.0)

    def _failed(
        self, d: Delivery, exc: BaseException, code: str, delay_s: float | None, elapsed: float
    ) -> FailItem:
        retry_ms = None if delay_s is None else max(0, round(delay_s * 1000))
        will_retry = retry_ms is not None and d.attempts < d.max_attempts
        message = exc_message(exc)
        job_log.warning(
            "job_failed",
            exc_info=exc,  # the line says its class; JSON adds the traceback
            extra={
                "error_code": code,
                "error": message,
                "error_type": type(exc).__name__,
                "duration_ms": round(elapsed * 1000, 3),
                "retry_in_ms": retry_ms if will_retry else None,
                "final": not will_retry,
            },
        )
        return FailItem(
            job_id=d.job_id,
            token=d.token,
            error_code=safe_text(str(code)),
            message=message,
            traceback=exc_traceback(exc),
            retry_delay_ms=retry_ms,
        )
