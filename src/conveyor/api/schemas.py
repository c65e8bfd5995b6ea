"""Request and response models of the HTTP API: the JSON contract, and its OpenAPI schemas.

Requests are strict (`"10"` is not an int, unknown fields are refused, `run_at` must carry a
zone) and parsed from the raw body in pydantic's JSON mode. A job reads as `conveyor.jobs.Job`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from conveyor.client import IDEMPOTENCY_KEY_MAX
from conveyor.flow import LIMIT_KEY_MAX
from conveyor.ids import UID_RE
from conveyor.jobs import MAX_ATTEMPTS_LIMIT, MAX_DELAY_MS, MAX_TIMEOUT_S, Job, JobState
from conveyor.jsontypes import WHOLE, JsonInt
from conveyor.queues import DEFAULT_QUEUE, PRIORITY_MAX, PRIORITY_MIN, QUEUE_NAME_RE, TYPE_NAME_RE

MAX_BATCH = 1000
#: longest long poll of `GET /v1/jobs/{id}/wait` (seconds)
MAX_WAIT_S = 60
CURSOR_MAX = 512
#: a listing's `next_cursor`: the uid of the last job of the page (see `list_jobs`)
CURSOR_PATTERN = UID_RE.pattern
CURSOR_DOC = "the `next_cursor` of the previous page"
#: `run_at` names a year from 1970 to 2999 (a past time means now)
RUN_AT_YEARS = (1970, 2999)
RUN_AT_PATTERN = r"^(?:19[7-9][0-9]|2[0-9]{3})-"

QUEUE_PATTERN = QUEUE_NAME_RE.pattern
TYPE_PATTERN = TYPE_NAME_RE.pattern
#: an error code follows the rule of a type name
ERROR_CODE_PATTERN = TYPE_NAME_RE.pattern
#: `<queue>:<32 hex digits>`, as `conveyor.ids` builds them
JOB_ID_PATTERN = QUEUE_PATTERN[:-1] + ":" + UID_RE.pattern[1:]
#: the `Idempotency-Key` header: printable ASCII, no spaces at the ends (HTTP trims them)
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$"

QueueName = Annotated[str, Field(pattern=QUEUE_PATTERN, examples=[DEFAULT_QUEUE])]


#: a limit key at the API: printable ASCII (the Python client takes any printable text)
LIMIT_KEY_PATTERN = r"^[\x20-\x7e]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ResponseModel(BaseModel):
    """A response model: every field is always sent, so its schema says so (required),
    while request models keep their defaulted fields optional."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


#: `delay_ms` and `run_at` are exclusive: stated in the schema, not only checked
NOT_BOTH_DUE_TIMES: JsonDict = {"not": {
    "required": ["delay_ms", "run_at"],
    "properties": {"delay_ms": {"type": "integer"}, "run_at": {"type": "string"}},
}}


class JobIn(_Strict):
    """One job to enqueue. `delay_ms` or `run_at`, not both; neither means now."""

    # The document publishes one variant of this per job type the server knows, each with
    # its payload's schema (`openapi_jobs.py`); this model reads the common fields.

    model_config = ConfigDict(json_schema_extra=NOT_BOTH_DUE_TIMES)

    type: str = Field(pattern=TYPE_PATTERN, examples=["fake"])
    payload: JsonValue = Field(default_factory=dict)
    queue: QueueName = DEFAULT_QUEUE
    priority: JsonInt = Field(default=0, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    delay_ms: Annotated[int, Field(ge=0, le=MAX_DELAY_MS), WHOLE] | None = None
    run_at: AwareDatetime | None = Field(
        default=None, json_schema_extra={"pattern": RUN_AT_PATTERN},
        description="RFC 3339 with a zone, in the years 1970 to 2999; a past time means now",
    )
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS_LIMIT), WHOLE] | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=IDEMPOTENCY_KEY_MAX,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="printable ASCII, as the `Idempotency-Key` header; the job this key "
        "names is returned, not doubled, until it is deleted",
    )
    limit_key: str | None = Field(
        default=None, min_length=1, max_length=LIMIT_KEY_MAX, pattern=LIMIT_KEY_PATTERN,
        description="flow control: the tenant / customer / account its queue's per-key "
        "limits and fairness apply to (printable ASCII)",
    )

    @field_validator("run_at")
    @classmethod
    def _run_at_years(cls, value: datetime | None) -> datetime | None:
        low, high = RUN_AT_YEARS
        if value is not None and not low <= value.year <= high:
            raise ValueError(f"run_at must be in the years {low} to {high}")
        return value

    @model_validator(mode="after")
    def _one_due_time(self) -> Self:
        if self.delay_ms is not None and self.run_at is not None:
            raise ValueError("give either delay_ms or run_at, not both")
        return self


class BatchIn(_Strict):
    jobs: list[JobIn] = Field(min_length=1, max_length=MAX_BATCH)


class BatchConflict(ResponseModel):
    """An item whose idempotency key names a live job enqueued with a different body."""

    index: int
    job_id: str
    message: str


class BatchOut(ResponseModel):
    """`jobs[i]` answers `jobs[i]` of the request: the new job, or the live job its
    idempotency key already names (`created[i]` false)."""

    jobs: list[Job]
    created: list[bool]
    conflicts: list[BatchConflict] = Field(default_factory=list)


class JobPage(ResponseModel):
    items: list[Job]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page. A page may "
        "hold fewer than `limit` items while this is set."
    )


#: every state, always: stated in the schema (the model keeps a dict, which the dashboard reads)
StateCounts = Annotated[dict[str, int], WithJsonSchema({
    "type": "object", "title": "StateCounts", "description": "jobs per state",
    "properties": {str(s): {"type": "integer", "minimum": 0} for s in JobState},
    "required": [str(s) for s in JobState], "additionalProperties": False,
})]


class QueueOut(ResponseModel):
    name: str
    counts: StateCounts
    paused: bool
    oldest_ready_age_s: float = Field(
        default=0.0, ge=0, description="seconds since the job waiting longest for a worker "
        "became due (QUEUED, or SCHEDULED past its time), by the broker's clock; 0: none "
        "waits. The autoscaling signal (see docs/ops).")
    limited: int = Field(default=0, ge=0, description="QUEUED jobs waiting behind the "
                         "queue's limits (flow control); also counted as queued")


class QueueList(ResponseModel):
    items: list[QueueOut]
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the next page; null: the last page")


class SeriesPointOut(ResponseModel):
    at: datetime = Field(description="start of the minute or hour (UTC)")
    succeeded: int = Field(ge=0, description="jobs that succeeded in the step")
    failed: int = Field(ge=0, description="attempts that failed and left the job to be "
                        "retried (an error with attempts left, or an expired lease requeued)")
    dead: int = Field(ge=0, description="jobs that ended DEAD in the step")


class SeriesOut(ResponseModel):
    """Outcomes of one queue per minute or per hour, counted by the broker's transitions
    themselves."""

    step_s: int = Field(description="seconds per point, the same for every point: 60 or 3600")
    points: list[SeriesPointOut] = Field(
        description="oldest first, the current minute (or hour) last")


class WorkerOut(ResponseModel):
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    jobs: list[str] = Field(description="ids of the jobs the worker holds")
    started_at: datetime
    last_seen_at: datetime | None
    metrics_url: str | None = Field(
        default=None, description="where the worker serves Prometheus metrics; null: off")


class WorkerList(ResponseModel):
    items: list[WorkerOut]


class Health(ResponseModel):
    status: Literal["ok", "ready"]


class ReadyWarning(ResponseModel):
    """Something an operator should fix that does not make the API unready."""

    code: str = Field(examples=["webhooks_unserved"])
    message: str


class Ready(ResponseModel):
    """`/readyz`: the broker answers and is safe; `warnings` lists what still needs care,
    e.g. `webhooks_unserved` (subscriptions exist and no live worker serves
    `CONVEYOR_WEBHOOK_QUEUE`)."""

    status: Literal["ready"]
    warnings: list[ReadyWarning]


class FieldError(BaseModel):
    """One invalid input: where (`loc`, from `body`, `query`, `path` or `header`), why."""

    loc: list[str | int]
    msg: str
    type: str
    index: int | None = Field(default=None, description="the batch item (batch enqueue)")


class ErrorBody(ResponseModel):
    code: str = Field(description="stable: see the `ErrorCode` schema")
    message: str
    details: list[FieldError] | dict[str, JsonValue] | None = Field(
        description="the invalid inputs (a list), facts about the error (an object), or null"
    )


class ErrorEnvelope(ResponseModel):
    error: ErrorBody
