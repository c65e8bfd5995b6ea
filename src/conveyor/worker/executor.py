"""Run one delivery and turn how it ended into an outcome for the broker (ack or fail).

The executor never talks to the broker: it returns an `AckItem` or a `FailItem` and the
completions batcher sends them in bulk. Cancellation (lease lost, shutdown) propagates as
`asyncio.CancelledError`; the runner decides what happens to the lease then.

A sync handler runs in a thread, and a thread cannot be killed: on timeout the job is failed
and its slot freed, but the thread runs on until the handler returns, holding one thread of
the pool. Sync handlers that may hang should enforce their own timeouts (socket timeouts...).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

from conveyor.brokers.base import AckItem, FailItem
from conveyor.errors import (
    ConveyorError,
    ErrorCode,
    JobTimeout,
    UnknownJobType,
    ValidationError,
)
from conveyor.handlers import HandlerSpec, JobContext, Registry
from conveyor.jobs import Delivery
from conveyor.logging import get_logger, job_context

Outcome = AckItem | FailItem

TRACEBACK_LIMIT = 4096
MESSAGE_LIMIT = 1024

log = get_logger("conveyor.worker.executor")
job_log = get_logger("conveyor.job")


def truncate_tail(text: str, limit: int) -> str:
    """Keep the end of a traceback: the frame that raised is the useful part."""
    if len(text) <= limit:
        return text
    marker = "...(truncated)...\n"
    return marker + text[len(text) - (limit - len(marker)) :]


def _message(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, ConveyorError) else str(exc)
    text = text or type(exc).__name__
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _traceback(exc: BaseException) -> str:
    return truncate_tail("".join(traceback.format_exception(exc)), TRACEBACK_LIMIT)


class Executor:
    """Runs handlers: async ones on the loop, sync ones in a pool sized to the concurrency."""

    def __init__(self, registry: Registry, *, worker_id: str, concurrency: int) -> None:
        self._registry = registry
        self._worker_id = worker_id
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, concurrency), thread_name_prefix="conveyor-job"
        )

    def shutdown(self) -> None:
        """Drop queued sync calls; threads already running finish on their own (see above)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def execute(self, delivery: Delivery) -> Outcome:
        with job_context(delivery.job_id, delivery.type, attempt=delivery.attempts):
            return await self._execute(delivery)

    async def _execute(self, d: Delivery) -> Outcome:
        try:
            spec = self._registry.get(d.type)
        except UnknownJobType as exc:
            return self._failed(d, exc, exc.code, None, 0.0)
        try:
            payload = spec.parse_payload(d.payload_json)
        except ValidationError as exc:
            return self._failed(d, exc, exc.code, None, 0.0)

        timeout_s = d.timeout_s if d.timeout_s is not None else spec.timeout_s
        log.debug("job started", extra={"queue": d.queue, "max_attempts": d.max_attempts})
        started = time.perf_counter()
        try:
            result = await self._call(spec, d, payload, timeout_s)
        except Exception as exc:  # handlers may raise anything: classify, never crash
            elapsed = time.perf_counter() - started
            code, delay_s = self._classify(spec, d, exc)
            return self._failed(d, exc, code, delay_s, elapsed)
        elapsed = time.perf_counter() - started

        try:
            result_json = to_json(result).decode()
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            # Deterministic: running the handler again would fail the same way.
            err = ConveyorError(
                f"handler result is not JSON-serialisable ({type(result).__name__}): {exc}",
                code=ErrorCode.HANDLER_ERROR,
            )
            return self._failed(d, err, err.code, None, elapsed)
        job_log.info("job succeeded", extra={"duration_ms": round(elapsed * 1000, 3)})
        return AckItem(d.job_id, d.token, result_json)

    async def _call(
        self, spec: HandlerSpec, d: Delivery, payload: Any, timeout_s: float | None
    ) -> Any:
        call = self._bind(spec, d, payload)
        if spec.is_async:
            awaitable = call()
        else:
            ctx = contextvars.copy_context()
            loop = asyncio.get_running_loop()
            awaitable = loop.run_in_executor(self._pool, ctx.run, call)
        if timeout_s is None:
            return await awaitable
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                return await awaitable
        except TimeoutError as exc:
            if deadline.expired():  # ours; a TimeoutError the handler raised stays as is
                raise JobTimeout(f"job timed out after {timeout_s:g}s") from exc
            raise

    def _bind(self, spec: HandlerSpec, d: Delivery, payload: Any) -> Callable[[], Any]:
        if not spec.wants_ctx:
            return functools.partial(spec.func, payload)
        ctx = JobContext(
            job_id=d.job_id,
            type=d.type,
            queue=d.queue,
            attempt=d.attempts,
            max_attempts=d.max_attempts,
            worker_id=self._worker_id,
            logger=job_log,
            lease_token=d.token,
        )
        return functools.partial(spec.func, payload, ctx)

    def _classify(self, spec: HandlerSpec, d: Delivery, exc: Exception) -> tuple[str, float | None]:
        """Error code and retry delay. The policy knows PermanentError (None) and
        RetryLater (its own delay); JobError and friends carry their own code."""
        code = str(exc.code) if isinstance(exc, ConveyorError) else str(ErrorCode.HANDLER_ERROR)
        return code, self._retry_delay(spec, d, exc)

    @staticmethod
    def _retry_delay(spec: HandlerSpec, d: Delivery, exc: BaseException) -> float | None:
        return spec.retry.next_delay_s(d.attempts, exc, max_attempts=d.max_attempts)

    def _failed(
        self, d: Delivery, exc: BaseException, code: str, delay_s: float | None, elapsed: float
    ) -> FailItem:
        retry_ms = None if delay_s is None else max(0, round(delay_s * 1000))
        will_retry = retry_ms is not None and d.attempts < d.max_attempts
        job_log.warning(
            "job failed",
            exc_info=exc,  # the line says its class; JSON adds the traceback
            extra={
                "error_code": code,
                "error": _message(exc),
                "duration_ms": round(elapsed * 1000, 3),
                "retry_in_ms": retry_ms if will_retry else None,
                "final": not will_retry,
            },
        )
        return FailItem(
            job_id=d.job_id,
            token=d.token,
            error_code=str(code),
            message=_message(exc),
            traceback=_traceback(exc),
            retry_delay_ms=retry_ms,
        )

