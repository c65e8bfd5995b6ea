"""`/v1/schedules`: recurring jobs (issue 15). Create or replace by name (201 / 200; an
identical body changes nothing), read, list, delete, pause, resume, trigger now, the jobs a
schedule made (newest first), and a preview of the ticks of a spec.

Bodies are read strictly from the bytes like every other body; a bad definition (cron,
zone, bounds, an unknown job type or a payload its model rejects) is a 422 with `details`,
and nothing is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from conveyor.api.body import json_response, parse_model
from conveyor.api.openapi import error_responses, json_body
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import CURSOR_DOC, CURSOR_PATTERN, QUEUE_PATTERN, JobPage
from conveyor.errors import ValidationError
from conveyor.handlers.registry import RESERVED_TYPE_PREFIX, is_reserved_type
from conveyor.jobs import Job
from conveyor.schedules.service import SchedulePage, ScheduleView
from conveyor.schedules.spec import PreviewRequest, Schedule, ScheduleName
from conveyor.schedules.store import LIST_MAX

NamePath = Annotated[str, Path(pattern=QUEUE_PATTERN, description="schedule name")]


class ScheduleIn(Schedule):
    """A schedule's definition; `name` may be left out (the path names it) or must match."""

    name: ScheduleName | None = None  # type: ignore[assignment]


class PreviewOut(BaseModel):
    runs: list[datetime] = Field(description="the next ticks, RFC 3339 UTC")


def _schedule_of(name: str, content_type: str | None, body: bytes) -> Schedule:
    data = parse_model(content_type, body, ScheduleIn)
    if data.name is not None and data.name != name:
        raise ValidationError("the body's name differs from the path's", details=[
            {"loc": ["body", "name"], "msg": "must be the name in the path",
             "type": "name_mismatch"}])
    if is_reserved_type(data.job.type):
        msg = (f"job type {data.job.type!r} is reserved: Conveyor enqueues its "
               f"{RESERVED_TYPE_PREFIX}* jobs itself")
        raise ValidationError(msg, details=[{"loc": ["body", "job", "type"], "msg": msg,
                                             "type": "reserved_job_type"}])
    return Schedule.parse({**data.model_dump(exclude={"name"}), "name": name})


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

    @router.post("/preview", response_model=PreviewOut, openapi_extra=json_body(PreviewRequest),
                 summary="The next ticks of a cron or every_s spec in a zone",
                 responses=error_responses(400, 401, 413, 415, 422, 503))
    async def preview_schedule(request: Request) -> Response:
        req = parse_model(request.headers.get("content-type"), await request.body(),
                          PreviewRequest)
        client = await rt.ready()
        return json_response(PreviewOut(runs=await client.schedules.preview(req)))

    @router.get("", response_model=SchedulePage, summary="Schedules by name",
                responses=error_responses(401, 422, 503))
    async def list_schedules(
        limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = 50,
        cursor: Annotated[str | None, Query(pattern=QUEUE_PATTERN,
                                            description=CURSOR_DOC)] = None,
    ) -> Response:
        client = await rt.ready()
        return json_response(await client.schedules.list(limit, cursor))

    @router.put("/{name}", status_code=201, response_model=ScheduleView,
                openapi_extra=json_body(ScheduleIn), summary="Create or replace a schedule",
                description="201 when created, 200 when replaced; an identical body changes "
                "nothing, not even the next tick.",
                responses={200: {"model": ScheduleView, "description": "Replaced (or "
                                 "identical: unchanged)"},
                           **error_responses(400, 401, 413, 415, 422, 503)})
    async def put_schedule(name: NamePath, request: Request) -> Response:
        schedule = _schedule_of(name, request.headers.get("content-type"),
                                await request.body())
        client = await rt.ready()
        res = await client.schedules.put(schedule)
        return json_response(res.schedule, 201 if res.created else 200,
                             {"Location": f"/v1/schedules/{name}"})

    @router.get("/{name}", response_model=ScheduleView, summary="Read a schedule",
                responses=error_responses(401, 404, 409, 422, 503))
    async def get_schedule(name: NamePath) -> Response:
        client = await rt.ready()
        return json_response(await client.schedules.get(name))

    @router.delete("/{name}", status_code=204, response_class=Response,
                   summary="Delete a schedule (the jobs it made stay)",
                   responses=error_responses(401, 404, 413, 422, 503))
    async def delete_schedule(name: NamePath) -> Response:
        client = await rt.ready()
        await client.schedules.delete(name)
        return Response(status_code=204)

    @router.post("/{name}/pause", response_model=ScheduleView,
                 summary="Stop a schedule's ticks", responses=error_responses(
                     401, 404, 409, 413, 422, 503))
    async def pause_schedule(name: NamePath) -> Response:
        client = await rt.ready()
        return json_response(await client.schedules.pause(name))

    @router.post("/{name}/resume", response_model=ScheduleView,
                 summary="Restart a schedule's ticks, counted from now",
                 responses=error_responses(401, 404, 409, 413, 422, 503))
    async def resume_schedule(name: NamePath) -> Response:
        client = await rt.ready()
        return json_response(await client.schedules.resume(name))

    @router.post("/{name}/trigger", status_code=201, response_model=Job,
                 summary="Enqueue the schedule's job now, outside its ticks",
                 responses=error_responses(401, 404, 409, 413, 422, 503))
    async def trigger_schedule(name: NamePath) -> Response:
        client = await rt.ready()
        job = await client.schedules.trigger(name)
        return json_response(job, 201, {"Location": f"/v1/jobs/{job.id}"})

    @router.get("/{name}/runs", response_model=JobPage,
                summary="The jobs a schedule made, newest first",
                responses=error_responses(401, 404, 422, 503))
    async def list_schedule_runs(
        name: NamePath,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN,
                                            description=CURSOR_DOC)] = None,
    ) -> Response:
        client = await rt.ready()
        page = await client.schedules.runs(name, limit, cursor)
        return json_response(JobPage(items=page.items, next_cursor=page.next_cursor))

    return router
