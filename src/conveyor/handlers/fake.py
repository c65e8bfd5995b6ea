"""The built-in `fake` job type (the seed's fakeHandler): sleeps, fails or succeeds on demand,
so tests, demos and benchmarks can drive every path of the state machine without real work.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from conveyor.errors import JobError, PermanentError
from conveyor.handlers.context import JobContext
from conveyor.handlers.registry import handler
from conveyor.jsontypes import JsonInt
from conveyor.retry import ExponentialBackoff

FAKE_TYPE = "fake"
MAX_FAKE_DURATION_MS = 3_600_000


class FakePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_ms: JsonInt = Field(default=0, ge=0, le=MAX_FAKE_DURATION_MS)
    fail_times: JsonInt = Field(default=0, ge=0)
    """Attempts 1..fail_times raise a retryable JobError."""
    permanent: bool = False
    result: JsonValue = None


@handler(
    FAKE_TYPE,
    payload=FakePayload,
    max_attempts=5,
    backoff=ExponentialBackoff(base_s=0.1, cap_s=2.0),
)
async def fake_handler(payload: FakePayload, ctx: JobContext) -> JsonValue:
    if payload.duration_ms:  # no sleep(0) at all: this is the benchmarks' hot path
        await asyncio.sleep(payload.duration_ms / 1000)
    if ctx.attempt <= payload.fail_times:
        raise JobError(f"fake failure {ctx.attempt} of {payload.fail_times}")
    if payload.permanent:
        raise PermanentError("fake permanent failure")
    return payload.result
