"""The job model and its states (the seed's job.type).

Inside the broker every time is UTC epoch milliseconds; this model is what leaves the broker:
times become timezone-aware datetimes (RFC 3339 in JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue


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
CANCELLABLE_STATES: frozenset[JobState] = frozenset({JobState.SCHEDULED, JobState.QUEUED})
RETRYABLE_STATES: frozenset[JobState] = frozenset({JobState.DEAD, JobState.CANCELLED})

MAX_ATTEMPTS_LIMIT = 100
MAX_DELAY_MS = 365 * 24 * 3600 * 1000
MAX_TIMEOUT_S = 7 * 24 * 3600.0


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
    outcome: str
    error_code: str | None = None
    message: str | None = None
    traceback: str | None = None


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
    last_error: ErrorInfo | None = None
    history: list[Attempt] = Field(default_factory=list)
    idempotency_key: str | None = None
    timeout_s: float | None = None


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
