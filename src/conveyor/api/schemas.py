"""Request and response models of the HTTP API: the JSON contract, and its OpenAPI schemas.

Requests are strict (`"10"` is not an int, unknown fields are refused, `run_at` must carry a
zone) and parsed from the raw body in pydantic's JSON mode. A job reads as `conveyor.jobs.Job`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, model_validator

from conveyor.client import IDEMPOTENCY_KEY_MAX
from conveyor.handlers.registry import TYPE_NAME_RE
from conveyor.ids import UID_RE
from conveyor.jobs import MAX_ATTEMPTS_LIMIT, MAX_DELAY_MS, MAX_TIMEOUT_S, Job
from conveyor.queues import DEFAULT_QUEUE, PRIORITY_MAX, PRIORITY_MIN, QUEUE_NAME_RE

MAX_BATCH = 1000
CURSOR_MAX = 512

QUEUE_PATTERN = QUEUE_NAME_RE.pattern
TYPE_PATTERN = TYPE_NAME_RE.pattern
#: `<queue>:<32 hex digits>`, as `conveyor.ids` builds them
JOB_ID_PATTERN = QUEUE_PATTERN[:-1] + ":" + UID_RE.pattern[1:]
#: the `Idempotency-Key` header: printable ASCII, no spaces at the ends (HTTP trims them)
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$"

QueueName = Annotated[str, Field(pattern=QUEUE_PATTERN, examples=[DEFAULT_QUEUE])]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class JobIn(_Strict):
    """One job to enqueue. `delay_ms` or `run_at`, not both; neither means now."""

    type: str = Field(pattern=TYPE_PATTERN, examples=["fake"])
    payload: JsonValue = Field(default_factory=dict)
    queue: QueueName = DEFAULT_QUEUE
    priority: int = Field(default=0, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    delay_ms: int | None = Field(default=None, ge=0, le=MAX_DELAY_MS)
    run_at: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with a zone, within 365 days"
    )
    max_attempts: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS_LIMIT)
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=IDEMPOTENCY_KEY_MAX,
        description="printable characters; a live job with this key is returned, not doubled",
    )

    @model_validator(mode="after")
    def _one_due_time(self) -> Self:
        if self.delay_ms is not None and self.run_at is not None:
            raise ValueError("give either delay_ms or run_at, not both")
        return self


class BatchIn(_Strict):
    jobs: list[JobIn] = Field(min_length=1, max_length=MAX_BATCH)


class BatchConflict(BaseModel):
    """An item whose idempotency key names a live job enqueued with a different body."""

    index: int
    job_id: str
    message: str


class BatchOut(BaseModel):
    """`jobs[i]` answers `jobs[i]` of the request: the new job, or the live job its
    idempotency key already names (`created[i]` false)."""

    jobs: list[Job]
    created: list[bool]
    conflicts: list[BatchConflict] = Field(default_factory=list)


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page. A page may "
        "hold fewer than `limit` items while this is set."
    )


class QueueOut(BaseModel):
    name: str
    counts: dict[str, int] = Field(description="jobs per state")
    paused: bool


class QueueList(BaseModel):
    items: list[QueueOut]
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the next page; null: the last page")


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    jobs: list[str] = Field(description="ids of the jobs the worker holds")
    started_at: datetime
    last_seen_at: datetime | None


class WorkerList(BaseModel):
    items: list[WorkerOut]


class Health(BaseModel):
    status: str


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    error: ErrorBody
