"""The Python client (the seed's job.services): enqueue, inspect, cancel, retry, DLQ.

`AsyncConveyor` is the native asyncio client; `Conveyor` is its synchronous twin, which runs
the async client on a private event-loop thread so both share one implementation. The API
service calls the async client; nothing else talks to the broker for producers.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import hashlib
import math
import threading
import warnings
from collections.abc import Awaitable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pydantic_core import PydanticSerializationError, to_json

from conveyor import tracing
from conveyor.batching import EnqueueBatcher
from conveyor.brokers import broker_from_settings
from conveyor.brokers.base import Broker, KeyInfo, Page, SeriesPoint, WorkerInfo
from conveyor.dlq import tool as dlq_tool
from conveyor.dlq.selection import DeadSelection
from conveyor.dlq.tool import DlqResult
from conveyor.errors import (
    IdempotencyConflict,
    JobFailed,
    PayloadTooLarge,
    ValidationError,
    WaitTimeout,
)
from conveyor.events.waiters import Waiters
from conveyor.flow import QueueLimits, check_limit_key, parse_limits
from conveyor.handlers import Registry, default_registry
from conveyor.ids import new_job_id
from conveyor.jobs import IDEMPOTENCY_KEY_MAX as IDEMPOTENCY_KEY_MAX  # re-exported
from conveyor.jobs import (
    MAX_ATTEMPTS_LIMIT,
    MAX_DELAY_MS,
    MAX_TIMEOUT_S,
    TERMINAL_STATES,
    EnqueueResult,
    Job,
    JobSpec,
    JobState,
    check_spec,
)
from conveyor.queues import DEFAULT_QUEUE, PRIORITY_MAX, PRIORITY_MIN, validate_queue_name
from conveyor.schedules.service import AsyncSchedules, Schedules
from conveyor.schedules.spec import JobTemplate
from conveyor.settings import Settings, get_settings
from conveyor.timeutil import datetime_to_ms, ms_to_datetime

if TYPE_CHECKING:
    from conveyor.webhooks.client import AsyncWebhooks, Webhooks

T = TypeVar("T")
MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAX_ATTEMPTS = 3
#: run_at must be earlier: every later step can still spell it as a datetime (max year 9999)
RUN_AT_LIMIT_MS = datetime_to_ms(datetime(9999, 1, 1, tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class JobRequest:
    """One job to enqueue, as `enqueue_many` takes it."""

    type: str
    payload: Any = None
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    delay: float | timedelta | None = None
    run_at: datetime | None = None
    max_attempts: int | None = None
    timeout_s: float | None = None
    idempotency_key: str | None = None
    #: flow control: the key (tenant, customer) its queue's per-key limits apply to
    limit_key: str | None = None


def _bad(field: str, message: str, value: Any = None) -> ValidationError:
    return ValidationError(message, details=[{"loc": [field], "msg": message, "value": value}])


def _int_in(field: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(field, f"{field} must be an integer from {lo} to {hi}", value)
    return value


#: longest wait one `wait` / `result` call may ask for (seconds)
MAX_WAIT_S = 86_400.0


def _wait_timeout(timeout: Any) -> float:
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
            or not math.isfinite(timeout) or not 0 <= timeout <= MAX_WAIT_S):
        raise _bad("timeout", f"timeout must be a number of seconds from 0 to {MAX_WAIT_S:g}",
                   timeout)
    return float(timeout)


@contextlib.contextmanager
def traced(specs: Sequence[JobSpec]) -> Iterator[Sequence[JobSpec]]:
    """One PRODUCER span around storing `specs` (tracing on); yields them carrying its
    context (one job's attempts become its children, a batch's link to it)."""
    if not specs or not tracing.enabled():
        yield specs
        return
    queues = {s.queue for s in specs}
    queue = next(iter(queues)) if len(queues) == 1 else "(several)"
    one = specs[0] if len(specs) == 1 else None
    with tracing.producer_span(queue, one.type if one else None, one.id if one else None,
                               count=len(specs)) as trace_context:
        yield [dataclasses.replace(s, trace=trace_context) for s in specs] if trace_context \
            else specs


def _deprecated(old: str, new: str) -> None:
    """Warn the caller of a client method kept only for existing code (stack: it, then us)."""
    warnings.warn(f"{old} is deprecated and will be removed: use {new} (it selects by ids or"
                  " filters, with dry_run, rate, target_queue and actor)", DeprecationWarning,
                  stacklevel=3)


def job_result(job: Job) -> Any:
    """The result of a finished job, or `JobFailed` naming its last error."""
    if job.state == JobState.SUCCEEDED:
        return job.result
    err = job.last_error
    code = err.code if err is not None else None
    raise JobFailed(
        f"job {job.id} ended {job.state}" + (f": {code}: {err.message}" if err else ""),
        job=job, error_code=code,
        details={"job_id": job.id, "state": str(job.state), "error_code": code},
    )


def check_same_request(spec: JobSpec, res: EnqueueResult) -> None:
    """An idempotency key that already names a job is fine for the same request only."""
    if res.fingerprint != spec.fingerprint:
        raise IdempotencyConflict(
            f"idempotency key {spec.idempotency_key!r} already names job {res.job_id}"
            " with a different request",
            details={"job_id": res.job_id},
        )


class AsyncConveyor:
    def __init__(
        self, broker: Broker, *, registry: Registry | None = None, validate_types: bool = True
    ) -> None:
        self.broker = broker
        self.registry = registry if registry is not None else default_registry
        self.validate_types = validate_types
        self._batcher = EnqueueBatcher(broker)
        #: the waiters of `wait` / `result`: one log follower per queue, made on first use
        self.waiters = Waiters(broker)
        self._webhooks: AsyncWebhooks | None = None
        #: recurring jobs (issue 15): put, get, list, delete, pause, resume, trigger, runs
        self.schedules = AsyncSchedules(broker, self._template_spec, self.get)

    @classmethod
    def from_url(
        cls, url: str | None = None, *, key_prefix: str | None = None,
        registry: Registry | None = None, settings: Settings | None = None,
        validate_types: bool = True,
    ) -> AsyncConveyor:
        s = settings or get_settings()
        if url or key_prefix:
            s = s.model_copy(update={"broker_url": url or s.broker_url,
                                     "key_prefix": key_prefix or s.key_prefix})
        return cls(broker_from_settings(s), registry=registry, validate_types=validate_types)

    async def connect(self) -> None:
        await self.broker.connect()

    @property
    def webhooks(self) -> AsyncWebhooks:
        """Webhook subscriptions: `create`, `list`, `get`, `delete` (imported on first use)."""
        if self._webhooks is None:
            from conveyor.webhooks.client import AsyncWebhooks

            self._webhooks = AsyncWebhooks(self.broker)
        return self._webhooks

    async def close(self) -> None:
        await self.waiters.close()
        await self.broker.close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- enqueue --------------------------------------------------------------------------
    def _template_spec(self, t: JobTemplate) -> JobSpec:
        """A schedule's job template through the enqueue checks (`AsyncSchedules.resolve`)."""
        return self.build_spec(JobRequest(t.type, t.payload, t.queue, t.priority,
                                          max_attempts=t.max_attempts,
                                          timeout_s=t.timeout_s))[0]

    def build_spec(self, req: JobRequest) -> tuple[JobSpec, Any]:
        """Validate one request; return the broker's JobSpec and the validated payload."""
        queue = validate_queue_name(req.queue)
        if not isinstance(req.type, str) or not req.type:
            raise _bad("type", "type must be a non-empty string", req.type)
        payload = req.payload
        max_attempts, timeout_s = req.max_attempts, req.timeout_s
        if self.validate_types:
            spec = self.registry.get(req.type)
            if payload is None and spec.payload_model is not None:
                payload = {}  # no payload: the model's defaults (a model never takes null)
            payload = spec.validate_payload(payload)
            max_attempts = max_attempts if max_attempts is not None else spec.retry.max_attempts
            timeout_s = timeout_s if timeout_s is not None else spec.timeout_s
        if max_attempts is None:  # untyped job (validate_types=False) with no explicit value
            max_attempts = DEFAULT_MAX_ATTEMPTS
        max_attempts = _int_in("max_attempts", max_attempts, 1, MAX_ATTEMPTS_LIMIT)
        priority = _int_in("priority", req.priority, PRIORITY_MIN, PRIORITY_MAX)
        if timeout_s is not None and (
            isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float)
            or not math.isfinite(timeout_s) or not 0 < timeout_s <= MAX_TIMEOUT_S
        ):
            raise _bad("timeout_s", f"timeout_s must be > 0 and <= {MAX_TIMEOUT_S:g}", timeout_s)
        delay_ms, run_at_ms = self._due(req)
        key = req.idempotency_key
        if key is not None and (
            not isinstance(key, str) or not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX
            or not key.isprintable()
        ):
            raise _bad("idempotency_key", "idempotency_key must be 1-256 printable characters")
        limit_key = check_limit_key(req.limit_key)
        try:
            payload_utf8 = to_json(payload)
        except PydanticSerializationError as exc:
            raise _bad("payload", f"payload is not JSON-serialisable: {exc}") from exc
        if len(payload_utf8) > MAX_PAYLOAD_BYTES:  # UTF-8 bytes, not characters
            raise PayloadTooLarge(
                f"payload is {len(payload_utf8)} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                details={"limit": MAX_PAYLOAD_BYTES},
            )
        payload_json = payload_utf8.decode()
        fp = ""
        if key is not None:  # only idempotent enqueues compare bodies
            fields = [req.type, queue, payload, priority, max_attempts, timeout_s, delay_ms,
                      run_at_ms]
            if limit_key is not None:  # only then: older fingerprints stay the same
                fields.append(limit_key)
            fp = hashlib.sha256(to_json(fields)).hexdigest()[:32]
        built = JobSpec(
            id=new_job_id(queue), type=req.type, queue=queue, payload_json=payload_json,
            priority=priority, max_attempts=max_attempts, timeout_s=timeout_s,
            delay_ms=delay_ms, run_at_ms=run_at_ms, idempotency_key=key, fingerprint=fp,
            limit_key=limit_key,
        )
        check_spec(built)  # what the broker checks again before it stores the job
        return built, payload

    @staticmethod
    def _due(req: JobRequest) -> tuple[int | None, int | None]:
        if req.delay is not None and req.run_at is not None:
            raise _bad("delay", "give either delay or run_at, not both")
        if req.delay is not None:
            delay = req.delay.total_seconds() if isinstance(req.delay, timedelta) else req.delay
            if isinstance(delay, bool) or not isinstance(delay, int | float) or not (
                math.isfinite(delay) and 0 <= delay * 1000 <= MAX_DELAY_MS
            ):
                raise _bad("delay", "delay must be between 0 and 365 days", req.delay)
            return round(delay * 1000), None
        if req.run_at is not None:
            if not isinstance(req.run_at, datetime):
                raise _bad("run_at", "run_at must be a datetime", str(req.run_at))
            ms = datetime_to_ms(req.run_at)
            if ms < 0:  # a time the brokers could not read back (or a year 0 in UTC)
                raise _bad("run_at", "run_at must not be before 1970-01-01T00:00:00Z",
                           req.run_at.isoformat())
            if ms >= RUN_AT_LIMIT_MS:  # any time before: a past one means now
                raise _bad("run_at", "run_at must be before the year 9999", req.run_at.isoformat())
            return None, ms
        return None, None

    async def enqueue_job(self, req: JobRequest) -> tuple[Job, bool]:
        """Enqueue one job; return it and whether it was created (False: idempotent hit)."""
        spec, payload = self.build_spec(req)
        with traced([spec]) as (spec,):
            res = await self._batcher.submit(spec)
        if not res.created:
            check_same_request(spec, res)
            return await self.broker.get(res.job_id), False
        return self.job_from_result(spec, payload, res), True

    @staticmethod
    def job_from_result(spec: JobSpec, payload: Any, res: EnqueueResult) -> Job:
        """The job as stored, built from what was sent and the broker's answer (no read)."""
        return Job(
            id=res.job_id, type=spec.type, queue=spec.queue, payload=payload, state=res.state,
            priority=spec.priority, attempts=0, max_attempts=spec.max_attempts,
            created_at=ms_to_datetime(res.created_at_ms),
            run_at=ms_to_datetime(res.run_at_ms), idempotency_key=spec.idempotency_key,
            timeout_s=spec.timeout_s, limit_key=spec.limit_key,
        )

    async def enqueue(
        self, type: str, payload: Any = None, *, queue: str = DEFAULT_QUEUE, priority: int = 0,
        delay: float | timedelta | None = None, run_at: datetime | None = None,
        max_attempts: int | None = None, timeout_s: float | None = None,
        idempotency_key: str | None = None, limit_key: str | None = None,
    ) -> Job:
        job, _ = await self.enqueue_job(JobRequest(
            type, payload, queue, priority, delay, run_at, max_attempts, timeout_s,
            idempotency_key, limit_key,
        ))
        return job

    async def enqueue_many(self, requests: Iterable[JobRequest]) -> list[EnqueueResult]:
        """Validate every request first (all or nothing), then store them in one round trip."""
        specs = [self.build_spec(r)[0] for r in requests]
        return await self.enqueue_specs(specs) if specs else []

    async def enqueue_specs(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        """Store built specs in one broker call, in one PRODUCER span (tracing on): one job's
        attempts are its children, a batch's link to it."""
        with traced(specs) as sent:
            return await self.broker.enqueue(sent)

    # --- operator -------------------------------------------------------------------------
    async def get(self, job_id: str) -> Job:
        return await self.broker.get(job_id)

    async def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        """Jobs by id in a bounded number of round trips; None for an unknown id."""
        return await self.broker.get_many(job_ids)

    async def wait(self, job_id: str, timeout: float = 30.0) -> Job:  # noqa: ASYNC109
        """The job once it is SUCCEEDED, DEAD or CANCELLED, whether it finished before or
        after this call; `WaitTimeout` (with the job as it is) after `timeout` seconds.
        Race-free, and every wait of this client on one queue shares one log follower."""
        job = await self.waiters.wait(job_id, _wait_timeout(timeout))
        if job.state not in TERMINAL_STATES:
            raise WaitTimeout(
                f"job {job_id} is still {job.state} after {timeout:g}s", job=job,
                details={"job_id": job_id, "state": str(job.state)},
            )
        return job

    async def result(self, job_id: str, timeout: float = 30.0) -> Any:  # noqa: ASYNC109
        """What the job's handler returned, once it SUCCEEDED; `JobFailed` (with its last
        error) if it ended DEAD or CANCELLED, `WaitTimeout` after `timeout` seconds."""
        return job_result(await self.wait(job_id, timeout))

    async def cancel(self, job_id: str, actor: str = "manual") -> Job:
        """SCHEDULED / QUEUED: CANCELLED now. RUNNING: its worker is asked to stop it (the
        job comes back still RUNNING with `cancel_requested`; it ends CANCELLED)."""
        return await self.broker.cancel(job_id, actor)

    async def retry(self, job_id: str, actor: str = "manual") -> Job:
        return await self.broker.retry(job_id, actor)

    async def list_jobs(
        self, *, queue: str | None = None, state: JobState | None = None,
        type: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page:
        return await self.broker.list_jobs(
            queue=queue, state=state, type=type, limit=limit, cursor=cursor
        )

    async def dlq_list(self, queue: str, limit: int = 50, cursor: str | None = None) -> Page:
        return await self.broker.dlq_list(queue, limit, cursor)

    async def dlq_redrive(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000
    ) -> list[str]:
        """Deprecated: use `redrive_dead` (docs/decisions.md, "One redrive method")."""
        _deprecated("dlq_redrive", "redrive_dead")
        return await self.broker.dlq_redrive(queue, job_ids, limit)

    async def dlq_purge(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000
    ) -> list[str]:
        """Deprecated: use `purge_dead` (docs/decisions.md, "One redrive method")."""
        _deprecated("dlq_purge", "purge_dead")
        return await self.broker.dlq_purge(queue, job_ids, limit)

    async def redrive_dead(
        self, ids: Sequence[str] = (), *, queue: str | None = None, type: str | None = None,
        error_code: str | None = None, died_before: datetime | None = None,
        died_after: datetime | None = None, dry_run: bool = False, rate: float | None = None,
        target_queue: str | None = None, actor: str = "client", limit: int | None = None,
        max_duration_s: float | None = None,
    ) -> DlqResult:
        """The redrive tool: the dead jobs named by `ids`, or selected by queue / type /
        error code / death time, back to QUEUED, in their own queue or as new jobs of
        `target_queue`; at most `rate` jobs per second. `dry_run` changes nothing and
        reports what would move. Each job's history records `actor` and the time. A paced
        run that would last past `max_duration_s` stops early with `done` False."""
        selection = DeadSelection(
            tuple(ids), queue, type, error_code, died_before=died_before, died_after=died_after
        )
        return await dlq_tool.redrive(
            self.broker, selection, actor=actor, dry_run=dry_run, rate=rate,
            target_queue=target_queue, limit=limit, max_duration_s=max_duration_s,
        )

    async def purge_dead(
        self, ids: Sequence[str] = (), *, queue: str | None = None, type: str | None = None,
        error_code: str | None = None, died_before: datetime | None = None,
        died_after: datetime | None = None, dry_run: bool = False, limit: int | None = None,
    ) -> DlqResult:
        """Delete dead jobs for good, selected as `redrive_dead` selects them."""
        selection = DeadSelection(
            tuple(ids), queue, type, error_code, died_before=died_before, died_after=died_after
        )
        return await dlq_tool.purge(self.broker, selection, dry_run=dry_run, limit=limit)

    async def stats(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        return await self.broker.stats(queues)

    async def workers(self) -> list[WorkerInfo]:
        return await self.broker.workers()

    async def series(
        self, queue: str, minutes: int = 60, type: str | None = None, step_s: int | None = None
    ) -> list[SeriesPoint]:
        """The queue's outcomes over the last `minutes` (up to 7 days), counted by the
        broker's transitions: every reader sees the same history. Per minute within a day,
        per hour beyond (or as `step_s`, 60 or 3600, says; `check_series_window`)."""
        return await self.broker.series(validate_queue_name(queue), minutes, type, step_s)

    async def ready_ages(self, queues: Sequence[str]) -> dict[str, float]:
        """Per queue, seconds since the job waiting longest for a worker became due (0: none
        waits): what an autoscaler scales on."""
        return {q: ms / 1000 for q, ms in (await self.broker.ready_ages(queues)).items()}

    async def pause(self, queue: str) -> None:
        await self.broker.pause(queue)

    async def resume(self, queue: str) -> None:
        await self.broker.resume(queue)

    async def is_paused(self, queue: str) -> bool:
        return await self.broker.is_paused(queue)

    async def paused_queues(self, queues: Sequence[str]) -> set[str]:
        return await self.broker.paused_queues(queues)

    # --- flow control ---------------------------------------------------------------------
    async def set_limits(self, queue: str, limits: QueueLimits | dict[str, Any]) -> QueueLimits:
        """Set a queue's limits (a QueueLimits or its JSON shape; every field None: delete)."""
        spec = limits if isinstance(limits, QueueLimits) else parse_limits(limits)
        return await self.broker.set_limits(validate_queue_name(queue), spec)

    async def get_limits(self, queue: str) -> QueueLimits | None:
        return await self.broker.get_limits(validate_queue_name(queue))

    async def delete_limits(self, queue: str) -> bool:
        return await self.broker.delete_limits(validate_queue_name(queue))

    async def limit_keys(self, queue: str, limit: int = 50) -> list[KeyInfo]:
        """The busiest keys of a queue with backlog: waiting, running, held until."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise _bad("limit", "limit must be an integer from 1 to 1000", limit)
        return await self.broker.limit_keys(validate_queue_name(queue), limit)

    async def limited_counts(self, queues: Sequence[str]) -> dict[str, int]:
        """QUEUED jobs per queue waiting behind its limits."""
        return await self.broker.limited_counts([validate_queue_name(q) for q in queues])

    async def held_counts(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per queue, how often each limit held work back (reason -> count)."""
        return await self.broker.held_counts([validate_queue_name(q) for q in queues])

    async def queue_page(
        self, limit: int = 1000, cursor: str | None = None
    ) -> tuple[list[str], str | None]:
        """Known queue names in name order after `cursor` (the last name of the previous
        page): up to `limit`, and the cursor of the next page (None: that was the last)."""
        names = await self.broker.queues()
        start = 0 if cursor is None else bisect.bisect_right(names, cursor)
        page = names[start : start + limit]
        return page, (page[-1] if page and start + limit < len(names) else None)

    async def delete_queue(self, queue: str) -> None:
        """Forget an empty queue (`QueueNotFound`; `InvalidState` while it holds jobs). It
        comes back with its next job."""
        await self.broker.forget_queue(queue)


class Conveyor:
    """Synchronous client: the async client driven on a private event-loop thread."""

    def __init__(self, inner: AsyncConveyor) -> None:
        self._inner = inner
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="conveyor-client", daemon=True
        )
        self._thread.start()
        self._connected = False
        #: the broker's blocking enqueue, if it has one: skips the hop to the loop thread
        self._fast = inner.broker.sync_enqueuer()
        self.schedules = Schedules(inner.schedules, self._call)

    @classmethod
    def from_url(
        cls, url: str | None = None, *, key_prefix: str | None = None,
        registry: Registry | None = None, settings: Settings | None = None,
        validate_types: bool = True,
    ) -> Conveyor:
        return cls(AsyncConveyor.from_url(
            url, key_prefix=key_prefix, registry=registry, settings=settings,
            validate_types=validate_types,
        ))

    @property
    def aio(self) -> AsyncConveyor:
        return self._inner

    @property
    def webhooks(self) -> Webhooks:
        """Webhook subscriptions: `create`, `list`, `get`, `delete`."""
        from conveyor.webhooks.client import Webhooks

        return Webhooks(self._inner.webhooks, self._call)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            self._ensure_connected()
        except BaseException:
            coro.close()
            raise
        return self._wait(coro)

    def _ensure_connected(self) -> None:
        if not self._connected:
            self._wait(self._inner.connect())
            self._connected = True

    def _wait(self, aw: Awaitable[T]) -> T:
        async def run() -> T:
            return await aw

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        if self._loop.is_running():
            if self._connected:
                self._wait(self._inner.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect now (otherwise the first call connects)."""
        self._ensure_connected()

    def build_spec(self, req: JobRequest) -> tuple[JobSpec, Any]:
        """See `AsyncConveyor.build_spec`."""
        return self._inner.build_spec(req)

    job_from_result = staticmethod(AsyncConveyor.job_from_result)

    def enqueue_job(self, req: JobRequest) -> tuple[Job, bool]:
        """See `AsyncConveyor.enqueue_job`."""
        if self._fast is None:
            return self._call(self._inner.enqueue_job(req))
        self._ensure_connected()  # the server checks and script loading run once, async
        spec, value = self._inner.build_spec(req)
        with traced([spec]) as (spec,):
            (res,) = self._fast.enqueue([spec])
        if not res.created:
            check_same_request(spec, res)
            return self.get(res.job_id), False
        return AsyncConveyor.job_from_result(spec, value, res), True

    def enqueue(
        self, type: str, payload: Any = None, *, queue: str = DEFAULT_QUEUE, priority: int = 0,
        delay: float | timedelta | None = None, run_at: datetime | None = None,
        max_attempts: int | None = None, timeout_s: float | None = None,
        idempotency_key: str | None = None, limit_key: str | None = None,
    ) -> Job:
        job, _ = self.enqueue_job(JobRequest(
            type, payload, queue, priority, delay, run_at, max_attempts, timeout_s,
            idempotency_key, limit_key,
        ))
        return job

    def enqueue_many(self, requests: Iterable[JobRequest]) -> list[EnqueueResult]:
        """See `AsyncConveyor.enqueue_many`."""
        specs = [self._inner.build_spec(r)[0] for r in requests]  # all valid, or nothing sent
        return self.enqueue_specs(specs) if specs else []

    def enqueue_specs(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        """See `AsyncConveyor.enqueue_specs`."""
        if self._fast is None:
            return self._call(self._inner.enqueue_specs(specs))
        self._ensure_connected()
        with traced(specs) as sent:
            return self._fast.enqueue(sent)

    def get(self, job_id: str) -> Job:
        return self._call(self._inner.get(job_id))

    def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        return self._call(self._inner.get_many(job_ids))

    def wait(self, job_id: str, timeout: float = 30.0) -> Job:
        """See `AsyncConveyor.wait`."""
        return self._call(self._inner.wait(job_id, timeout))

    def result(self, job_id: str, timeout: float = 30.0) -> Any:
        """See `AsyncConveyor.result`."""
        return self._call(self._inner.result(job_id, timeout))

    def cancel(self, job_id: str, actor: str = "manual") -> Job:
        return self._call(self._inner.cancel(job_id, actor))

    def retry(self, job_id: str, actor: str = "manual") -> Job:
        return self._call(self._inner.retry(job_id, actor))

    def list_jobs(
        self, *, queue: str | None = None, state: JobState | None = None,
        type: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page:
        return self._call(self._inner.list_jobs(
            queue=queue, state=state, type=type, limit=limit, cursor=cursor
        ))

    def dlq_list(self, queue: str, limit: int = 50, cursor: str | None = None) -> Page:
        return self._call(self._inner.dlq_list(queue, limit, cursor))

    def dlq_redrive(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000
    ) -> list[str]:
        """Deprecated: use `redrive_dead`."""
        _deprecated("dlq_redrive", "redrive_dead")
        return self._call(self._inner.broker.dlq_redrive(queue, job_ids, limit))

    def dlq_purge(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000
    ) -> list[str]:
        """Deprecated: use `purge_dead`."""
        _deprecated("dlq_purge", "purge_dead")
        return self._call(self._inner.broker.dlq_purge(queue, job_ids, limit))

    def redrive_dead(
        self, ids: Sequence[str] = (), *, queue: str | None = None, type: str | None = None,
        error_code: str | None = None, died_before: datetime | None = None,
        died_after: datetime | None = None, dry_run: bool = False, rate: float | None = None,
        target_queue: str | None = None, actor: str = "client", limit: int | None = None,
        max_duration_s: float | None = None,
    ) -> DlqResult:
        return self._call(self._inner.redrive_dead(
            ids, queue=queue, type=type, error_code=error_code, died_before=died_before,
            died_after=died_after, dry_run=dry_run, rate=rate, target_queue=target_queue,
            actor=actor, limit=limit, max_duration_s=max_duration_s,
        ))

    def purge_dead(
        self, ids: Sequence[str] = (), *, queue: str | None = None, type: str | None = None,
        error_code: str | None = None, died_before: datetime | None = None,
        died_after: datetime | None = None, dry_run: bool = False, limit: int | None = None,
    ) -> DlqResult:
        return self._call(self._inner.purge_dead(
            ids, queue=queue, type=type, error_code=error_code, died_before=died_before,
            died_after=died_after, dry_run=dry_run, limit=limit,
        ))

    def stats(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        return self._call(self._inner.stats(queues))

    def set_limits(self, queue: str, limits: QueueLimits | dict[str, Any]) -> QueueLimits:
        return self._call(self._inner.set_limits(queue, limits))

    def get_limits(self, queue: str) -> QueueLimits | None:
        return self._call(self._inner.get_limits(queue))

    def delete_limits(self, queue: str) -> bool:
        return self._call(self._inner.delete_limits(queue))

    def limit_keys(self, queue: str, limit: int = 50) -> list[KeyInfo]:
        return self._call(self._inner.limit_keys(queue, limit))

    def limited_counts(self, queues: Sequence[str]) -> dict[str, int]:
        return self._call(self._inner.limited_counts(queues))

    def workers(self) -> list[WorkerInfo]:
        return self._call(self._inner.workers())

    def pause(self, queue: str) -> None:
        self._call(self._inner.pause(queue))

    def resume(self, queue: str) -> None:
        self._call(self._inner.resume(queue))

    def series(
        self, queue: str, minutes: int = 60, type: str | None = None, step_s: int | None = None
    ) -> list[SeriesPoint]:
        return self._call(self._inner.series(queue, minutes, type, step_s))

    def ready_ages(self, queues: Sequence[str]) -> dict[str, float]:
        return self._call(self._inner.ready_ages(queues))

    def is_paused(self, queue: str) -> bool:
        return self._call(self._inner.is_paused(queue))

    def paused_queues(self, queues: Sequence[str]) -> set[str]:
        return self._call(self._inner.paused_queues(queues))

    def held_counts(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        return self._call(self._inner.held_counts(queues))

    def queue_page(
        self, limit: int = 1000, cursor: str | None = None
    ) -> tuple[list[str], str | None]:
        return self._call(self._inner.queue_page(limit, cursor))

    def delete_queue(self, queue: str) -> None:
        self._call(self._inner.delete_queue(queue))
