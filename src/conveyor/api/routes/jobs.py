"""`/v1/jobs`: enqueue one or a batch, read, wait for, list, retry and cancel jobs.

`POST /v1/jobs` is the hot path: its body is parsed straight from bytes, the client coalesces
concurrent enqueues into one broker round trip, and the response is serialised once.
"""

from __future__ import annotations

from typing import Annotated, NoReturn

from fastapi import APIRouter, Path, Query, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from conveyor.api.body import json_response, read_model
from conveyor.api.enqueue import enqueue_batch, enqueue_one
from conveyor.api.openapi import error_responses, json_body
from conveyor.api.queries import list_page
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import (
    CURSOR_DOC,
    CURSOR_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    JOB_ID_PATTERN,
    MAX_WAIT_S,
    QUEUE_PATTERN,
    TYPE_PATTERN,
    BatchIn,
    BatchOut,
    JobIn,
    JobPage,
)
from conveyor.client import IDEMPOTENCY_KEY_MAX
from conveyor.joblogs import JobLogs, decode_lines
from conveyor.jobs import Job, JobState

JobIdPath = Annotated[str, Path(pattern=JOB_ID_PATTERN, max_length=97,
                                description="`<queue>:<32 hex digits>`")]
CursorQuery = Annotated[str | None, Query(pattern=CURSOR_PATTERN, description=CURSOR_DOC)]

#: documented here, read by `enqueue_one` (also served by the fast path, outside FastAPI)
IDEMPOTENCY_HEADER_DOC = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Same as the body's `idempotency_key`: give one, or the same value twice "
    "(two different keys are a 409 `idempotency_conflict`).",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX,
               "pattern": IDEMPOTENCY_KEY_PATTERN},
}


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

    @router.post(
        "", status_code=201, response_model=Job,
        openapi_extra={**json_body(JobIn), "parameters": [IDEMPOTENCY_HEADER_DOC]},
        summary="Enqueue a job",
        responses={200: {"model": Job, "description": "The live job this idempotency key "
                         "already names (nothing created)"},
                   **error_responses(400, 401, 409, 413, 415, 422, 503)},
    )
    async def enqueue_job(request: Request) -> Response:
        headers = request.headers
        out = await enqueue_one(rt, headers.get("content-type"), await request.body(),
                                headers.get("idempotency-key"))
        return Response(out.body, out.status, {"Location": out.location},
                        media_type="application/json")

    @router.post(
        "/batch", status_code=201, response_model=BatchOut, openapi_extra=json_body(BatchIn),
        summary="Enqueue up to 1,000 jobs; none unless all are valid",
        responses={200: {"model": BatchOut, "description": "Every item named a live job "
                         "already (nothing created)"},
                   **error_responses(400, 401, 413, 415, 422, 503)},
    )
    async def enqueue_jobs(request: Request) -> Response:
        body = await read_model(request, BatchIn)
        client = await rt.ready()
        out = await enqueue_batch(client, body.jobs)
        return json_response(out, 201 if any(out.created) else 200)

    @router.api_route("/batch", methods=["GET", "PUT", "PATCH", "DELETE"],
                      include_in_schema=False, response_model=None)
    async def batch_other_methods() -> NoReturn:
        """`/v1/jobs/batch` is a resource of its own: 405 here, not a 422 from `/{id}`."""
        raise StarletteHTTPException(405)

    @router.get(
        "", response_model=JobPage, summary="List jobs, newest first",
        responses=error_responses(401, 422, 503),
    )
    async def list_jobs(
        queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN)] = None,
        state: JobState | None = None,
        type: Annotated[str | None, Query(pattern=TYPE_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: CursorQuery = None,
    ) -> Response:
        client = await rt.ready()
        page = await list_page(client, queue=queue, state=state, type=type, limit=limit,
                               cursor=cursor)
        return json_response(JobPage(items=page.items, next_cursor=page.next_cursor))

    @router.get("/{id}", response_model=Job, summary="Read a job",
                responses=error_responses(401, 404, 409, 422, 503))
    async def get_job(id: JobIdPath) -> Response:
        client = await rt.ready()
        return json_response(await client.get(id))

    @router.get(
        "/{id}/wait", response_model=Job,
        summary="Wait for a job to finish (long poll)",
        description="Answers with the job as soon as it is `succeeded`, `dead` or "
        "`cancelled` (at once if it already is), or after `timeout_s` with its current state: "
        "`200` either way, so tell them apart by `state`. Race-free: a job finishing at any "
        "moment of the call is seen.",
        responses=error_responses(401, 404, 409, 422, 503),
    )
    async def wait_job(
        id: JobIdPath,
        timeout_s: Annotated[float, Query(ge=0, le=MAX_WAIT_S,
                                          description="seconds to wait at most")] = 30.0,
    ) -> Response:
        client = await rt.ready()
        return json_response(await client.waiters.wait(id, timeout_s))
    @router.get("/{id}/logs", response_model=JobLogs,
                summary="The lines the job's handler wrote through ctx.logger",
                description="Oldest first: the last 200 lines within 64 KiB, over every "
                "attempt (each line names its attempt). Deleted with the job.",
                responses=error_responses(401, 404, 409, 422, 503))
    async def get_job_logs(id: JobIdPath) -> Response:
        client = await rt.ready()
        await client.get(id)  # 404 for an unknown job
        lines = decode_lines(await client.broker.job_logs(id))
        return json_response(JobLogs(job_id=id, lines=lines))

    @router.post("/{id}/retry", response_model=Job,
                 summary="Put a dead or cancelled job back in the queue",
                 responses=error_responses(401, 404, 409, 413, 422, 503))
    async def retry_job(id: JobIdPath) -> Response:
        client = await rt.ready()
        return json_response(await client.retry(id, actor="api"))

    @router.post("/{id}/cancel", response_model=Job,
                 summary="Cancel a job: at once if scheduled or queued; a running one is "
                 "asked to stop",
                 description="A SCHEDULED or QUEUED job is CANCELLED at once (200). A RUNNING "
                 "job's worker is asked to stop it (202): the job comes back still `running` "
                 "with `cancel_requested: true`, and ends CANCELLED once its worker has "
                 "stopped the handler (at its next heartbeat), or when its lease expires. "
                 "Asking again is harmless (202 again).",
                 responses={202: {"model": Job, "description": "A running job: its worker "
                                  "is asked to stop it"},
                            **error_responses(401, 404, 409, 413, 422, 503)})
    async def cancel_job(id: JobIdPath) -> Response:
        client = await rt.ready()
        job = await client.cancel(id, actor="api")
        return json_response(job, 202 if job.state == JobState.RUNNING else 200)

    return router
