"""The job event as it leaves the broker: the one JSON shape the event log, the SSE stream,
waiters and webhooks share (issue 17). Inside the broker times are epoch ms; here `at` is a
UTC datetime (RFC 3339 `...Z` in JSON).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.jobs import MAX_PROGRESS_MESSAGE as MAX_PROGRESS_MESSAGE  # re-exported
from conveyor.jobs import JobState
from conveyor.jobs import Progress as Progress  # re-exported: the event's `progress`
from conveyor.queues import QUEUE_NAME_RE, TYPE_NAME_RE

#: an event id is the log's cursor (a stream id, a row id): printable, short, no spaces
EVENT_ID_PATTERN = r"^[!-~]{1,64}$"
#: the registry's TYPE_NAME_RE, spelled out: importing conveyor.handlers from here would be
#: circular (the handlers package registers `conveyor.webhook`, whose payload is an event)
JOB_TYPE_PATTERN = TYPE_NAME_RE.pattern


class EventName(StrEnum):
    """One per transition of the state machine, plus progress reports."""

    ENQUEUED = "enqueued"
    SCHEDULED = "scheduled"
    STARTED = "started"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"
    RELEASED = "released"
    LEASE_EXPIRED = "lease_expired"
    REDRIVEN = "redriven"
    PROGRESS = "progress"


class JobEvent(BaseModel):
    """`{"id", "job_id", "queue", "type", "event", "state", "attempt", "at", "error_code"}`,
    plus `progress` on progress events. `id` is unique within its queue's log only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=EVENT_ID_PATTERN)
    job_id: str = Field(min_length=3, max_length=200)
    queue: str = Field(pattern=QUEUE_NAME_RE.pattern)
    type: str = Field(pattern=JOB_TYPE_PATTERN)
    event: EventName
    state: JobState
    attempt: int = Field(ge=0)
    at: datetime
    error_code: str | None = Field(default=None, max_length=128)
    progress: Progress | None = None

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_utc(value)

    def as_json(self) -> dict[str, Any]:
        """The event's JSON: `progress` only on events that carry one."""
        data = self.model_dump(mode="json")
        if data["progress"] is None:
            del data["progress"]
        return data


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    return value.astimezone(UTC)
