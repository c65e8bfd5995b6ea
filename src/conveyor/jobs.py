"""The job model and its states (the seed's job.type).

Inside the broker every time is UTC epoch milliseconds; this model is what leaves the broker:
times become timezone-aware datetimes (RFC 3339 in JSON).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from conveyor.errors import ValidationError
from conveyor.flow import limit_key_problem
from conveyor.queues import PRIORITY_MAX, PRIORITY_MIN, QUEUE_NAME_RE


class JobState(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


LIVE_STATES: frozenset[JobState] = frozenset(
    {JobState.SCHEDULED, JobState.QUEUED, JobState.RUNNING}
)
TERMINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED}
)
CANCELLABLE_STATES: frozenset[JobState] = frozenset(
    {JobState.SCHEDULED, JobState.QUEUED, JobState.RUNNING}
)
RETRYABLE_STATES: frozenset[JobState] = frozenset({JobState.DEAD, JobState.CANCELLED})


class Outcome(StrEnum):
    """How one line of a job's history ended: an attempt, or an operator's action. The Lua
    scripts write these strings; Python reads them back into this enum."""

    SUCCEEDED = "succeeded"
    #: the attempt failed and the job will run again
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    #: the worker's lease ran out (it died, hung or lost its connection); the job runs again
    LEASE_EXPIRED = "lease_expired"
    #: handed back without charging the attempt (worker stopping, or rate limited upstream)
    RELEASED = "released"
    #: DEAD -> QUEUED by the redrive tool or a DLQ policy
    REDRIVEN = "redriven"
    #: DEAD / CANCELLED -> QUEUED by a manual retry
    RETRIED = "retried"

MAX_ATTEMPTS_LIMIT = 100
MAX_DELAY_MS = 365 * 24 * 3600 * 1000
MAX_TIMEOUT_S = 7 * 24 * 3600.0
#: 9999-12-31T23:59:59.999Z, the last millisecond a `datetime` can hold: no time stored in a
#: broker may lie outside [0, MAX_EPOCH_MS], so every stored time reads back
MAX_EPOCH_MS = 253_402_300_799_999
TYPE_MAX = 128
#: listings show a result whose JSON text is longer than this as its first characters
RESULT_PREVIEW_CHARS = 256
IDEMPOTENCY_KEY_MAX = 256


class ErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str


#: what the API sends is every field: its schema says they are all required
_OUT = ConfigDict(json_schema_serialization_defaults_required=True)


class Attempt(BaseModel):
    """One line of a job's history: a delivery and how it ended, or an operator's action."""

    model_config = _OUT

    attempt: int
    worker: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: Outcome
    error_code: str | None = None
    message: str | None = None
    traceback: str | None = None


class JobSchedule(BaseModel):
    """The schedule that made a job, and the tick it fired for (None: a manual trigger)."""

    model_config = _OUT

    name: str
    tick: datetime | None = None
#: longest `message` of a progress report
MAX_PROGRESS_MESSAGE = 1000


class Progress(BaseModel):
    """`ctx.progress(value, message)`: a fraction 0-1 or a count, and a line of text."""

    model_config = ConfigDict(extra="forbid", frozen=True,
                              json_schema_serialization_defaults_required=True)

    value: float = Field(ge=0)
    message: str | None = Field(default=None, max_length=MAX_PROGRESS_MESSAGE)
    at: datetime

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("progress value must be finite")
        return value

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return value.astimezone(UTC)


class Job(BaseModel):
    model_config = _OUT

    id: str
    type: str
    queue: str
    payload: JsonValue = Field(description="as validated against its type's payload model")
    state: JobState
    priority: int = 0
    attempts: int = 0
    max_attempts: int
    created_at: datetime
    run_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: JsonValue = Field(default=None, description="what the handler returned")
    #: set in listings only, for a result whose JSON text is longer than RESULT_PREVIEW_CHARS:
    #: `result` is then null and `result_preview` its first characters (the job's own read,
    #: `GET /v1/jobs/{id}`, has the whole result)
    result_truncated: bool = False
    result_preview: str | None = None
    last_error: ErrorInfo | None = None
    history: list[Attempt] = Field(default_factory=list)
    idempotency_key: str | None = None
    timeout_s: float | None = None
    schedule: JobSchedule | None = Field(
        default=None, description="the schedule that enqueued the job; null for other jobs")
    worker: str | None = Field(
        default=None, description="RUNNING only: the id of the worker holding the lease")
    cancel_requested: bool = Field(
        default=False, description="RUNNING only: an operator asked its worker to stop it "
        "(`POST /v1/jobs/{id}/cancel`); it ends CANCELLED once the worker has stopped it")
    cancel_requested_by: str | None = Field(
        default=None, description="who asked (with `cancel_requested`)")
    #: the last `ctx.progress(value, message)` of the running (or finished) attempt
    progress: Progress | None = None
    #: the flow-control key (tenant, customer, account) its queue's per-key limits apply to
    limit_key: str | None = None


#: longest trace context stored with a job (a traceparent is 55, tracestate adds some)
TRACE_MAX = 1024

@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated job, ready for the broker. Built by the client, never by hand."""

    id: str
    type: str
    queue: str
    payload_json: str
    priority: int = 0
    max_attempts: int = 1
    timeout_s: float | None = None
    delay_ms: int | None = None
    run_at_ms: int | None = None
    idempotency_key: str | None = None
    fingerprint: str = ""
    #: the producer's W3C trace context (`conveyor.tracing`), stored with the job; '' none
    trace: str = ""
    limit_key: str | None = None

    @property
    def timeout_ms(self) -> int | None:
        """The timeout as the broker stores it: whole milliseconds, rounded up (a timeout is
        never shorter than asked, and never 0)."""
        if self.timeout_s is None:
            return None
        return max(math.ceil(round(self.timeout_s * 1000, 6)), 1)


def _refuse(field: str, message: str, value: Any) -> ValidationError:
    return ValidationError(message, details=[{"loc": [field], "msg": message, "value": value}])


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def check_spec(spec: JobSpec) -> None:
    """What every broker checks before it stores a job (the client builds specs that pass;
    this guards everything else): each field in the range the broker can store and read back
    unchanged. Raises ValidationError naming the field."""
    queue, _, uid = spec.id.rpartition(":")
    if queue != spec.queue or not QUEUE_NAME_RE.fullmatch(queue) or len(uid) != 32:
        raise _refuse("id", f"job id {spec.id!r} does not belong to queue {spec.queue!r}",
                      spec.id)
    if not (isinstance(spec.type, str) and 1 <= len(spec.type) <= TYPE_MAX
            and spec.type.isprintable()):
        raise _refuse("type", f"type must be 1-{TYPE_MAX} printable characters", spec.type)
    if not isinstance(spec.payload_json, str) or not spec.payload_json:
        raise _refuse("payload", "payload must be JSON text", None)
    if not _int_in(spec.priority, PRIORITY_MIN, PRIORITY_MAX):
        raise _refuse("priority", f"priority must be an integer from {PRIORITY_MIN} to "
                      f"{PRIORITY_MAX}", spec.priority)
    if not _int_in(spec.max_attempts, 1, MAX_ATTEMPTS_LIMIT):
        raise _refuse("max_attempts", f"max_attempts must be an integer from 1 to "
                      f"{MAX_ATTEMPTS_LIMIT}", spec.max_attempts)
    t = spec.timeout_s
    if t is not None and (isinstance(t, bool) or not isinstance(t, int | float)
                          or not math.isfinite(t) or not 0 < t <= MAX_TIMEOUT_S):
        raise _refuse("timeout_s", f"timeout_s must be > 0 and <= {MAX_TIMEOUT_S:g}", t)
    if spec.delay_ms is not None and spec.run_at_ms is not None:
        raise _refuse("delay", "give either delay or run_at, not both", None)
    if spec.delay_ms is not None and not _int_in(spec.delay_ms, 0, MAX_DELAY_MS):
        raise _refuse("delay", "delay must be between 0 and 365 days", spec.delay_ms)
    if spec.run_at_ms is not None and not _int_in(spec.run_at_ms, 0, MAX_EPOCH_MS):
        raise _refuse("run_at", "run_at must be between 1970-01-01T00:00:00Z and "
                      "9999-12-31T23:59:59.999Z", spec.run_at_ms)
    key = spec.idempotency_key
    if key is not None and not (isinstance(key, str) and 1 <= len(key) <= IDEMPOTENCY_KEY_MAX
                                and key.isprintable()):
        raise _refuse("idempotency_key", f"idempotency_key must be 1-{IDEMPOTENCY_KEY_MAX} "
                      "printable characters", None)
    if not (isinstance(spec.trace, str) and len(spec.trace) <= TRACE_MAX
            and spec.trace.isascii() and spec.trace.isprintable()):
        raise _refuse("trace", f"trace context must be at most {TRACE_MAX} printable ASCII "
                      "characters", None)
    if spec.limit_key is not None and (problem := limit_key_problem(spec.limit_key)):
        raise _refuse("limit_key", problem, None)


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """What the broker says of one enqueued job: new, or the live job its key already names."""

    job_id: str
    created: bool
    fingerprint: str
    state: JobState
    created_at_ms: int
    run_at_ms: int


@dataclass(slots=True)
class Delivery:
    """A job handed to a worker under a lease. `token` fences every later call."""

    job_id: str
    queue: str
    type: str
    payload_json: str
    token: str
    attempts: int
    max_attempts: int
    timeout_s: float | None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the producer's trace context stored at enqueue ('' none): `conveyor.tracing`
    trace: str = ""
    #: when the job became due (run_at, broker ms) and when this lease began: queue wait
    due_ms: int | None = None
    leased_ms: int | None = None
