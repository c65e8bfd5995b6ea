"""`/v1/queues`: job counts per state for each queue (paged by name), pausing / resuming
deliveries, and forgetting an empty queue.

A paused queue still accepts jobs; workers take none from it until it is resumed. Counts and
paused flags of a page are read in pipelines, never one concurrent call per queue.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from conveyor.api.body import json_response
from conveyor.api.openapi import error_responses
from conveyor.api.queries import known_queue, queue_list
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import (
    QUEUE_PATTERN,
    TYPE_PATTERN,
    QueueList,
    QueueOut,
    SeriesOut,
    SeriesPointOut,
)
from conveyor.brokers.base import (
    SERIES_KEEP_MINUTES,
    SERIES_MINUTE_SPAN,
    SERIES_STEPS,
    check_series_window,
)
from conveyor.timeutil import ms_to_datetime

QueuePath = Annotated[str, Path(pattern=QUEUE_PATTERN, description="queue name")]
#: queues per page of GET /v1/queues, at most and by default
MAX_PAGE = 1000


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/v1/queues", tags=["queues"])

    @router.get("", response_model=QueueList, summary="Queues by name: counts and paused",
                responses=error_responses(401, 422, 503))
    async def list_queues(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
        cursor: Annotated[str | None, Query(
            pattern=QUEUE_PATTERN, description="next_cursor of the previous page")] = None,
    ) -> Response:
        client = await rt.ready()
        names, next_cursor = await client.queue_page(limit, cursor)
        items = await queue_list(client, names) if names else []
        return json_response(QueueList(items=items, next_cursor=next_cursor))

    @router.get("/{name}", response_model=QueueOut, summary="One queue: counts and paused",
                description="A queue the broker knows: one that received a job and was not "
                "forgotten since (`DELETE`), or a paused one; any other name is a 404 "
                "`queue_not_found`. A known queue whose jobs are all gone has zero counts.",
                responses=error_responses(401, 404, 422, 503))
    async def get_queue(name: QueuePath) -> Response:
        client = await rt.ready()
        await known_queue(client, name)
        return json_response((await queue_list(client, [name]))[0])

    @router.get("/{name}/series", response_model=SeriesOut,
                summary="A queue's outcomes per minute or per hour (up to 7 days back)",
                description="Counted by the broker in the same atomic step as each outcome, "
                "so every reader sees the same history. `type` narrows to one job type. "
                f"Per-minute counts are kept for the last {SERIES_MINUTE_SPAN} minutes; older "
                "hours are rolled up into one count per hour (exactly the sum of their "
                f"minutes). So `step_s` is 60 for `minutes` up to {SERIES_MINUTE_SPAN} and "
                "3600 beyond, unless `step_s` asks for 3600 (60 beyond a day is refused, "
                "`validation_error`). Points never mix steps: per hour, every point is a "
                "whole clock hour, the first one the hour holding the window's first minute "
                "(so it may start before it), the last one the current hour so far. 404 "
                "`queue_not_found` for a queue the broker does not know (as `getQueue`).",
                responses=error_responses(401, 404, 422, 503))
    async def get_queue_series(
        name: QueuePath,
        minutes: Annotated[int, Query(ge=1, le=SERIES_KEEP_MINUTES)] = 60,
        type: Annotated[str | None, Query(pattern=TYPE_PATTERN, max_length=128)] = None,
        step_s: Annotated[int | None, Query(
            description="seconds per point (default: by `minutes`); 60 only for `minutes` "
            f"up to {SERIES_MINUTE_SPAN}", json_schema_extra={"enum": list(SERIES_STEPS)})
        ] = None,
    ) -> Response:
        client = await rt.ready()
        step = check_series_window(minutes, type, step_s)
        await known_queue(client, name)
        points = await client.series(name, minutes, type, step)
        return json_response(SeriesOut(step_s=step, points=[
            SeriesPointOut(at=ms_to_datetime(p.minute * 60_000),
                           succeeded=p.succeeded, failed=p.failed, dead=p.dead)
            for p in points]))

    @router.post("/{name}/pause", response_model=QueueOut,
                 summary="Stop deliveries from a queue (it still accepts jobs)",
                 responses=error_responses(401, 413, 422, 503))
    async def pause_queue(name: QueuePath) -> Response:
        client = await rt.ready()
        await client.pause(name)
        return json_response((await queue_list(client, [name]))[0])

    @router.post("/{name}/resume", response_model=QueueOut,
                 summary="Restart deliveries from a queue",
                 responses=error_responses(401, 413, 422, 503))
    async def resume_queue(name: QueuePath) -> Response:
        client = await rt.ready()
        await client.resume(name)
        return json_response((await queue_list(client, [name]))[0])

    @router.delete("/{name}", status_code=204, response_class=Response,
                   summary="Forget an empty queue (it comes back with its next job)",
                   description="Refused (409) while the queue holds any job. Its paused flag, "
                   "limits, event log and followers' cursors go with it.",
                   responses=error_responses(401, 404, 409, 413, 422, 503))
    async def delete_queue(name: QueuePath) -> Response:
        client = await rt.ready()
        await client.delete_queue(name)
        return Response(status_code=204)

    return router
