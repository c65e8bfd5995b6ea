"""`/v1/dlq`: the dead-letter queue: list dead jobs (by queue, type, error code), purge one,
and redrive or purge many: by ids or by queue / type / error code / death time, with a dry
run, a rate limit and a target queue (the redrive tool, `conveyor.dlq.tool`).

Redriving one dead job is also `POST /v1/jobs/{id}/retry`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel
from pydantic.config import JsonDict
from pydantic_core import from_json
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from conveyor.api.body import is_json, json_response, parse_model
from conveyor.api.openapi import error_responses, json_body
from conveyor.api.queries import list_page
from conveyor.api.routes.jobs import CursorQuery, JobIdPath
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import (
    ERROR_CODE_PATTERN,
    JOB_ID_PATTERN,
    QUEUE_PATTERN,
    TYPE_PATTERN,
    JobPage,
    QueueName,
    ResponseModel,
)
from conveyor.dlq.pacing import MAX_RATE
from conveyor.dlq.selection import (
    FILTERS,
    MAX_IDS,
    DeadSelection,
    check_ids_or_filters,
    dead_filter,
)
from conveyor.dlq.tool import DlqResult
from conveyor.errors import JobNotFound, ValidationError
from conveyor.jobs import JobState
from conveyor.jsontypes import WHOLE

ACTOR = "api"
#: a paced redrive answers within this (then `done` is false: repeat the request)
PACED_REQUEST_MAX_S = 30.0

JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN, max_length=97)]


class _Selection(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    dry_run: bool = Field(default=False, description="report what would change; change nothing")
    limit: Annotated[int, Field(ge=1), WHOLE] | None = Field(
        default=None, description="act on at most this many jobs")


class DeadJobIds(_Selection):
    """The dead jobs with these ids (an id names its queue); the others are `skipped`."""

    ids: list[JobId] = Field(min_length=1, max_length=MAX_IDS)


#: "at least one filter, not null", stated in the schema as the model checks it: "not every
#: filter absent or null" (a `not`, which client generators leave out of their types)
_AT_LEAST_ONE: JsonDict = {"not": {"properties": {
    name: {"type": "null"} for name in ("queue", *FILTERS)}}}


class DeadJobFilter(_Selection):
    """Every dead job that matches all the filters given: at least one (`queue` alone selects
    that queue's whole DLQ). Death times are RFC 3339 with a zone, half-open: `died_after`
    <= died < `died_before`; an empty range selects nothing."""

    model_config = ConfigDict(json_schema_extra=_AT_LEAST_ONE)

    queue: QueueName | None = None
    type: str | None = Field(default=None, pattern=TYPE_PATTERN)
    error_code: str | None = Field(default=None, pattern=ERROR_CODE_PATTERN)
    died_before: AwareDatetime | None = None
    died_after: AwareDatetime | None = None

    @property
    def empty_range(self) -> bool:
        return (self.died_after is not None and self.died_before is not None
                and self.died_after >= self.died_before)


class _RedriveOptions(BaseModel):
    rate: float | None = Field(default=None, gt=0, le=MAX_RATE,
                               description="at most this many jobs per second")
    target_queue: QueueName | None = Field(
        default=None, description="redrive into this queue as new jobs (default: their own)"
    )


class RedriveByIds(DeadJobIds, _RedriveOptions):
    """Redrive the dead jobs with these ids."""


class RedriveByFilter(DeadJobFilter, _RedriveOptions):
    """Redrive every dead job that matches the filters."""


Selection = DeadJobIds | DeadJobFilter
#: the request bodies, by route: (ids variant, filter variant)
PURGE_IN = (DeadJobIds, DeadJobFilter)
REDRIVE_IN = (RedriveByIds, RedriveByFilter)


@contextmanager
def _body_errors() -> Iterator[None]:
    """The selection rules' errors as the API states field errors: `loc` under `body`, a
    `type` (the `FieldError` schema)."""
    try:
        yield
    except ValidationError as exc:
        found = exc.details if isinstance(exc.details, list) else []
        raise ValidationError(exc.message, details=[
            {"loc": ["body", *d.get("loc", [])], "msg": str(d.get("msg", exc.message)),
             "type": "value_error"} for d in found if isinstance(d, dict)
        ] or [{"loc": ["body"], "msg": exc.message, "type": "value_error"}]) from None


def read_selection(
    content_type: str | None, body: bytes, models: tuple[type[DeadJobIds], type[DeadJobFilter]]
) -> Selection:
    """The ids variant when the body names `ids`, else the filter variant (the document's
    `oneOf`); a body with ids and filters gets the selection's own error rather than an
    unknown-field list."""
    try:
        data = from_json(body)
    except ValueError:
        data = None  # parse_model says why
    by_ids = isinstance(data, dict) and "ids" in data
    if by_ids and is_json(content_type):
        with _body_errors():
            check_ids_or_filters(True, data)
    return parse_model(content_type, body, models[0] if by_ids else models[1])


class RedriveOut(ResponseModel):
    moved: int
    ids: list[str] = Field(description="the jobs moved (the first 1,000)")
    moved_to: dict[str, str] = Field(description="new id of each job redriven into another "
                                     "queue")
    skipped: list[str] = Field(description="ids asked for that were not dead")
    done: bool = Field(description="false when a paced redrive (`rate`) stopped after "
                       f"{PACED_REQUEST_MAX_S:g} s with jobs left: send the request again")


class RedriveDryRunOut(ResponseModel):
    would_move: int
    ids: list[str]
    skipped: list[str]


class PurgeOut(ResponseModel):
    purged: int
    ids: list[str]
    skipped: list[str]


class PurgeDryRunOut(ResponseModel):
    would_purge: int
    ids: list[str]
    skipped: list[str]


def _one_of(schema: dict[str, Any]) -> None:
    schema["oneOf"] = schema.pop("anyOf")  # the variants exclude each other


class RedriveIn(RootModel[RedriveByIds | RedriveByFilter]):
    """Dead jobs to redrive: by `ids`, or by filters."""

    model_config = ConfigDict(json_schema_extra=_one_of)


class PurgeIn(RootModel[DeadJobIds | DeadJobFilter]):
    """Dead jobs to purge: by `ids`, or by filters."""

    model_config = ConfigDict(json_schema_extra=_one_of)


class RedriveResult(RootModel[RedriveOut | RedriveDryRunOut]):
    """What a redrive moved (`moved`), or with `dry_run` what it would move (`would_move`)."""


class PurgeResult(RootModel[PurgeOut | PurgeDryRunOut]):
    """What a purge deleted (`purged`), or with `dry_run` what it would delete."""


def _selected(body: Selection) -> dict[str, Any]:
    """The client's selection arguments of a request body, checked by the selection rules
    (`DeadSelection`) before the broker is asked anything."""
    with _body_errors():
        if isinstance(body, DeadJobIds):
            sel = DeadSelection(tuple(body.ids))
        else:
            sel = DeadSelection((), body.queue, body.type, body.error_code,
                                died_before=body.died_before, died_after=body.died_after)
    return {"ids": sel.ids, "queue": sel.queue, "type": sel.type, "error_code": sel.error_code,
            "died_before": sel.died_before, "died_after": sel.died_after}


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/v1/dlq", tags=["dlq"])

    @router.get(
        "", response_model=JobPage, summary="Dead jobs, newest first",
        description="`error_code` filters each page after it is read, so a page may be "
        "short, even empty, while `next_cursor` is set.",
        responses=error_responses(401, 422, 503),
    )
    async def list_dead_jobs(
        queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN)] = None,
        type: Annotated[str | None, Query(pattern=TYPE_PATTERN)] = None,
        error_code: Annotated[str | None, Query(pattern=ERROR_CODE_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: CursorQuery = None,
    ) -> Response:
        keep = dead_filter(error_code=error_code)
        client = await rt.ready()
        page = await list_page(client, queue=queue, state=JobState.DEAD, type=type, limit=limit,
                               cursor=cursor)
        items = page.items if keep is None else [j for j in page.items if keep(j)]
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
                   responses=error_responses(401, 404, 413, 422, 503))
    async def purge_dead_job(id: JobIdPath) -> Response:
        client = await rt.ready()
        if not (await client.purge_dead([id])).count:
            raise JobNotFound(f"job {id} is not in the dead-letter queue",
                              details={"job_id": id})
        return Response(status_code=204)

    @router.post(
        "/redrive", response_model=RedriveResult, openapi_extra=json_body(RedriveIn),
        summary="Redrive dead jobs (by ids or filters), optionally paced or into another queue",
        description="Each job's history records the redrive (`api`) and its time. With "
        f"`rate`, the request lasts about `count / rate` seconds, at most "
        f"{PACED_REQUEST_MAX_S:g} s: then `done` is false and the same request goes on.",
        responses=error_responses(400, 401, 413, 415, 422, 503),
    )
    async def redrive_dead_jobs(request: Request) -> Response:
        body = read_selection(request.headers.get("content-type"), await request.body(),
                              REDRIVE_IN)
        assert isinstance(body, RedriveByIds | RedriveByFilter)
        if isinstance(body, DeadJobFilter) and body.empty_range:
            res = DlqResult(count=0, ids=[], skipped=[], dry_run=body.dry_run)
        else:
            selected = _selected(body)
            client = await rt.ready()
            res = await client.redrive_dead(
                **selected, dry_run=body.dry_run, rate=body.rate,
                target_queue=body.target_queue, actor=ACTOR, limit=body.limit,
                max_duration_s=PACED_REQUEST_MAX_S,
            )
        if res.dry_run:
            return json_response(RedriveDryRunOut(would_move=res.count, ids=res.ids,
                                                  skipped=res.skipped))
        return json_response(RedriveOut(moved=res.count, ids=res.ids, moved_to=res.moved_to,
                                        skipped=res.skipped, done=res.done))

    @router.post(
        "/purge", response_model=PurgeResult, openapi_extra=json_body(PurgeIn),
        summary="Delete dead jobs for good (by ids or filters)",
        responses=error_responses(400, 401, 413, 415, 422, 503),
    )
    async def purge_dead_jobs(request: Request) -> Response:
        body = read_selection(request.headers.get("content-type"), await request.body(),
                              PURGE_IN)
        if isinstance(body, DeadJobFilter) and body.empty_range:
            res = DlqResult(count=0, ids=[], skipped=[], dry_run=body.dry_run)
        else:
            selected = _selected(body)
            client = await rt.ready()
            res = await client.purge_dead(**selected, dry_run=body.dry_run, limit=body.limit)
        if res.dry_run:
            return json_response(PurgeDryRunOut(would_purge=res.count, ids=res.ids,
                                                skipped=res.skipped))
        return json_response(PurgeOut(purged=res.count, ids=res.ids, skipped=res.skipped))

    return router
