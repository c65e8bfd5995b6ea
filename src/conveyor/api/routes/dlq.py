"""`/v1/dlq`: the dead-letter queue: list dead jobs (by queue, type, error code), purge one,
and redrive or purge many: by ids or by queue / type / error code / death time, with a dry
run, a rate limit and a target queue (the redrive tool, `conveyor.dlq.tool`).

Redriving one dead job is also `POST /v1/jobs/{id}/retry`.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn, Self

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from conveyor.api.body import json_response, read_model
from conveyor.api.openapi import error_responses
from conveyor.api.routes.jobs import JobIdPath, list_page
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import (
    CURSOR_MAX,
    JOB_ID_PATTERN,
    QUEUE_PATTERN,
    TYPE_PATTERN,
    JobPage,
    QueueName,
)
from conveyor.dlq.pacing import MAX_RATE
from conveyor.dlq.selection import MAX_IDS
from conveyor.dlq.tool import DlqResult
from conveyor.errors import JobNotFound
from conveyor.ids import split_job_id
from conveyor.jobs import JobState

ERROR_CODE_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
ACTOR = "api"

JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN, max_length=97)]


class DeadSelectionIn(BaseModel):
    """Job `ids`, or filters (all ANDed; `queue` alone selects its whole DLQ). Death times
    are RFC 3339 with a zone, half-open: `died_after` <= died < `died_before`."""

    model_config = ConfigDict(strict=True, extra="forbid")

    ids: list[JobId] | None = Field(default=None, min_length=1, max_length=MAX_IDS)
    queue: QueueName | None = None
    type: str | None = Field(default=None, pattern=TYPE_PATTERN)
    error_code: str | None = Field(default=None, pattern=ERROR_CODE_PATTERN)
    died_before: AwareDatetime | None = None
    died_after: AwareDatetime | None = None
    dry_run: bool = Field(default=False, description="report what would change; change nothing")
    limit: int | None = Field(default=None, ge=1, description="act on at most this many jobs")

    @model_validator(mode="after")
    def _ids_or_filters(self) -> Self:
        filtered = any(v is not None for v in (
            self.type, self.error_code, self.died_before, self.died_after
        ))
        if self.ids is not None and filtered:
            raise ValueError("give ids or filters (type, error_code, died_*), not both")
        if self.ids is None and not filtered and self.queue is None:
            raise ValueError("give ids, a queue or a filter: refusing to act on every dead job"
                             " of every queue")
        if self.queue is not None and self.ids is not None:
            for job_id in self.ids:
                if split_job_id(job_id)[0] != self.queue:
                    raise ValueError(f"job {job_id} is not in queue {self.queue}")
        if (self.died_after is not None and self.died_before is not None
                and self.died_after >= self.died_before):
            raise ValueError("died_after must be earlier than died_before")
        return self


class RedriveIn(DeadSelectionIn):
    rate: float | None = Field(default=None, gt=0, le=MAX_RATE,
                               description="at most this many jobs per second")
    target_queue: QueueName | None = Field(
        default=None, description="redrive into this queue as new jobs (default: their own)"
    )


class RedriveOut(BaseModel):
    moved: int
    ids: list[str] = Field(description="the jobs moved (the first 1,000)")
    moved_to: dict[str, str] = Field(description="new id of each job redriven into another "
                                     "queue")
    skipped: list[str] = Field(description="ids asked for that were not dead")


class RedriveDryRunOut(BaseModel):
    would_move: int
    ids: list[str]
    skipped: list[str]


class PurgeOut(BaseModel):
    purged: int
    ids: list[str]
    skipped: list[str]


class PurgeDryRunOut(BaseModel):
    would_purge: int
    ids: list[str]
    skipped: list[str]


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a route that reads `model` itself, the schema inline (it has no
    nested models), so the document needs no component registered by the app."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/v1/dlq", tags=["dlq"])

    @router.get(
        "", response_model=JobPage, summary="Dead jobs, newest first",
        description="`error_code` filters each page after it is read, so a page may be "
        "short, even empty, while `next_cursor` is set.",
        responses=error_responses(401, 422, 503),
    )
    async def list_dead(
        queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN)] = None,
        type: Annotated[str | None, Query(pattern=TYPE_PATTERN)] = None,
        error_code: Annotated[str | None, Query(pattern=ERROR_CODE_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Query(min_length=1, max_length=CURSOR_MAX)] = None,
    ) -> Response:
        client = await rt.ready()
        page = await list_page(client, queue=queue, state=JobState.DEAD, type=type, limit=limit,
                               cursor=cursor)
        items = page.items
        if error_code is not None:
            items = [j for j in items if j.last_error and j.last_error.code == error_code]
        return json_response(JobPage(items=items, next_cursor=page.next_cursor))

    @router.api_route("/redrive", methods=["GET", "PUT", "PATCH", "DELETE"],
                      include_in_schema=False, response_model=None)
    @router.api_route("/purge", methods=["GET", "PUT", "PATCH", "DELETE"],
                      include_in_schema=False, response_model=None)
    async def bulk_other_methods() -> NoReturn:
        """`/v1/dlq/redrive` and `/purge` are resources of their own: 405 here, not a 422
        from `DELETE /{id}` (registered first, so they match first)."""
        raise StarletteHTTPException(405)

    @router.delete("/{id}", status_code=204, response_class=Response,
                   summary="Delete a dead job for good",
                   responses=error_responses(401, 404, 422, 503))
    async def purge(id: JobIdPath) -> Response:
        client = await rt.ready()
        queue, _ = split_job_id(id)
        if not await client.dlq_purge(queue, [id]):
            raise JobNotFound(f"job {id} is not in the dead-letter queue",
                              details={"job_id": id})
        return Response(status_code=204)

    @router.post(
        "/redrive", response_model=RedriveOut | RedriveDryRunOut,
        openapi_extra=_body(RedriveIn),
        summary="Redrive dead jobs (by ids or filters), optionally paced or into another queue",
        description="Each job's history records the redrive (`api`) and its time. With "
        "`rate`, the request lasts about `count / rate` seconds; bound it with `limit`.",
        responses=error_responses(400, 401, 415, 422, 503),
    )
    async def redrive(request: Request) -> Response:
        body = await read_model(request, RedriveIn)
        client = await rt.ready()
        res = await client.redrive_dead(
            body.ids or (), queue=body.queue, type=body.type, error_code=body.error_code,
            died_before=body.died_before, died_after=body.died_after, dry_run=body.dry_run,
            rate=body.rate, target_queue=body.target_queue, actor=ACTOR, limit=body.limit,
        )
        if res.dry_run:
            return json_response(RedriveDryRunOut(would_move=res.count, ids=res.ids,
                                                  skipped=res.skipped))
        return json_response(RedriveOut(moved=res.count, ids=res.ids, moved_to=res.moved_to,
                                        skipped=res.skipped))

    @router.post(
        "/purge", response_model=PurgeOut | PurgeDryRunOut,
        openapi_extra=_body(DeadSelectionIn),
        summary="Delete dead jobs for good (by ids or filters)",
        responses=error_responses(400, 401, 415, 422, 503),
    )
    async def purge_many(request: Request) -> Response:
        body = await read_model(request, DeadSelectionIn)
        client = await rt.ready()
        res: DlqResult = await client.purge_dead(
            body.ids or (), queue=body.queue, type=body.type, error_code=body.error_code,
            died_before=body.died_before, died_after=body.died_after, dry_run=body.dry_run,
            limit=body.limit,
        )
        if res.dry_run:
            return json_response(PurgeDryRunOut(would_purge=res.count, ids=res.ids,
                                                skipped=res.skipped))
        return json_response(PurgeOut(purged=res.count, ids=res.ids, skipped=res.skipped))

    return router
