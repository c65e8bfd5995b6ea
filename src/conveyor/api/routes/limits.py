"""`/v1/queues/{name}/limits` and `/v1/queues/{name}/keys`: flow control over HTTP.

A queue's limits (concurrency and rate, for the queue and per limit key, and fairness
weights) are set, read and removed here; `keys` lists the busiest limit keys with backlog.
Bad input is a 422 and changes nothing (the body is checked whole before the broker call).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from starlette.responses import Response

from conveyor.api.body import json_response, read_model
from conveyor.api.errors import LimitsNotFound
from conveyor.api.openapi import error_responses, json_body
from conveyor.api.queries import known_queue
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import LIMIT_KEY_PATTERN, QUEUE_PATTERN, ResponseModel
from conveyor.flow import (
    LIMIT_KEY_MAX,
    LIMIT_MAX,
    PER_S_MAX,
    PER_S_MIN,
    WEIGHT_MAX,
    WEIGHTS_MAX,
    QueueLimits,
    parse_limits,
)
from conveyor.jsontypes import WHOLE
from conveyor.timeutil import ms_to_datetime

QueuePath = Annotated[str, Path(pattern=QUEUE_PATTERN, description="queue name")]
Count = Annotated[int, Field(ge=1, le=LIMIT_MAX), WHOLE]
LimitKey = Annotated[str, Field(min_length=1, max_length=LIMIT_KEY_MAX,
                                pattern=LIMIT_KEY_PATTERN)]


#: key -> weight; the schema says what every key must look like (a fuzzer reads it)
Weights = Annotated[
    dict[LimitKey, Annotated[int, Field(ge=1, le=WEIGHT_MAX), WHOLE]],
    Field(max_length=WEIGHTS_MAX),
    WithJsonSchema({
        "type": "object", "maxProperties": WEIGHTS_MAX,
        "propertyNames": {"minLength": 1, "maxLength": LIMIT_KEY_MAX,
                          "pattern": LIMIT_KEY_PATTERN},
        "additionalProperties": {"type": "integer", "minimum": 1, "maximum": WEIGHT_MAX},
    }),
]


class RateIn(BaseModel):
    """`count` starts per `per_s` seconds, at most `burst` at once (a token bucket)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    count: Count
    per_s: float = Field(default=1.0, ge=PER_S_MIN, le=PER_S_MAX)
    burst: Count = 1


class LimitsIn(BaseModel):
    """A queue's limits; a field null or absent: no such limit (all of them: none at all)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    concurrency: Count | None = Field(default=None, description="RUNNING jobs of the queue")
    rate: RateIn | None = Field(default=None, description="starts of the queue")
    key_concurrency: Count | None = Field(default=None,
                                          description="RUNNING jobs per limit key")
    key_rate: RateIn | None = Field(default=None, description="starts per limit key")
    key_weights: Weights | None = Field(default=None,
                                        description="fairness weight per key (others: 1)")


class RateOut(ResponseModel):
    count: int
    per_s: float
    burst: int


class LimitsOut(ResponseModel):
    queue: str
    concurrency: int | None
    rate: RateOut | None
    key_concurrency: int | None
    key_rate: RateOut | None
    key_weights: dict[str, int] | None


class KeyOut(ResponseModel):
    key: str
    backlog: int = Field(description="QUEUED jobs of this key")
    running: int = Field(description="RUNNING jobs of this key holding a permit")
    held_until: datetime | None = Field(
        description="when a limit (rate, concurrency: null until a permit) or a RateLimited "
        "hold lets it start again; null: not held")
    held: bool


class KeyList(ResponseModel):
    queue: str
    items: list[KeyOut]


def limits_out(queue: str, limits: QueueLimits | None) -> LimitsOut:
    spec = limits or QueueLimits()

    def rate(r: object) -> RateOut | None:
        return None if r is None else RateOut.model_validate(r, from_attributes=True)

    return LimitsOut(queue=queue, concurrency=spec.concurrency, rate=rate(spec.rate),
                     key_concurrency=spec.key_concurrency, key_rate=rate(spec.key_rate),
                     key_weights=spec.key_weights)


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/v1/queues", tags=["queues"])

    @router.put("/{name}/limits", response_model=LimitsOut, openapi_extra=json_body(LimitsIn),
                summary="Set a queue's limits (flow control)",
                responses=error_responses(400, 401, 413, 415, 422, 503))
    async def put_queue_limits(name: QueuePath, request: Request) -> Response:
        body = await read_model(request, LimitsIn)
        spec = parse_limits(body.model_dump())
        client = await rt.ready()
        return json_response(limits_out(name, await client.set_limits(name, spec)))

    @router.get("/{name}/limits", response_model=LimitsOut,
                summary="A queue's limits",
                description="404 `limits_not_found` for a queue without limits (never set, "
                "deleted, or its queue forgotten): the resource `DELETE` removes.",
                responses=error_responses(401, 404, 422, 503))
    async def get_queue_limits(name: QueuePath) -> Response:
        client = await rt.ready()
        limits = await client.get_limits(name)
        if limits is None:
            raise LimitsNotFound(f"queue {name} has no limits", details={"queue": name})
        return json_response(limits_out(name, limits))

    @router.delete("/{name}/limits", response_model=LimitsOut,
                   summary="Remove a queue's limits (jobs waiting on them go on)",
                   responses=error_responses(401, 413, 422, 503))
    async def delete_queue_limits(name: QueuePath) -> Response:
        client = await rt.ready()
        await client.delete_limits(name)
        return json_response(limits_out(name, None))

    @router.get("/{name}/keys", response_model=KeyList,
                summary="The busiest limit keys of a queue with backlog",
                description="404 `queue_not_found` for a queue the broker does not know "
                "(as `GET /v1/queues/{name}`).",
                responses=error_responses(401, 404, 422, 503))
    async def list_queue_keys(
        name: QueuePath, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> Response:
        client = await rt.ready()
        await known_queue(client, name)
        keys = await client.limit_keys(name, limit)
        return json_response(KeyList(queue=name, items=[
            KeyOut(key=k.key, backlog=k.backlog, running=k.running,
                   held_until=None if k.held_until_ms is None
                   else ms_to_datetime(k.held_until_ms),
                   held=k.held)
            for k in keys
        ]))

    return router
