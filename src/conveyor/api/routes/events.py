"""`GET /v1/events`: the job event log as Server-Sent Events (issue 17), via sse-starlette.

One stream follows one or more queues. Each event is `event: job`, `data:` the event JSON,
`id:` a cursor over every queue of the stream (`<queue>:<cursor>,...`): reconnecting with it
as `Last-Event-ID` resumes right after that event, with nothing lost or repeated, as long
as the log still holds what came next; when it does not, an `event: gap` (data: the queue
and the cursor that fell out) comes first. A comment (`: ping`) every 15 s keeps proxies
from closing an idle stream. Reads go to the broker per stream; waiting for new events
shares the process's one follower per queue (`Waiters.listening`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import StringConstraints
from sse_starlette import EventSourceResponse, ServerSentEvent

from conveyor.api.openapi import error_responses, named_schema
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import JOB_ID_PATTERN, QUEUE_PATTERN, TYPE_PATTERN
from conveyor.brokers.base import LOG_START, EventPage
from conveyor.client import AsyncConveyor
from conveyor.errors import ValidationError
from conveyor.events.model import JobEvent
from conveyor.ids import split_job_id

MAX_QUEUES = 20
#: a stream that names no queue follows every queue known when it starts, at most this many
MAX_ALL_QUEUES = 100
MAX_TYPES = 20
#: seconds between keep-alive comments
PING_S = 15
#: how often a stream over every queue looks for new queues
DISCOVER_S = 2.0
READ_LIMIT = 500
#: a `Last-Event-ID` longer than this is refused (20 queues of 64 characters + cursors)
LAST_ID_MAX = 2048
QueueName = Annotated[str, StringConstraints(pattern=QUEUE_PATTERN)]
TypeName = Annotated[str, StringConstraints(pattern=TYPE_PATTERN)]

STREAM_DOC = {
    "description": "`text/event-stream`: `event: job` with the event JSON as `data` and a "
    "resumable `id`; `event: gap` when events after `Last-Event-ID` left the bounded log; "
    "a comment every 15 s.",
    "content": {"text/event-stream": {"schema": named_schema("EventStream", {
        "type": "string", "title": "EventStream",
        "description": "Server-Sent Events: `event: job` / `event: gap`, `id:`, `data:` JSON",
    })}},
}


def parse_last_id(value: str | None, queues: list[str]) -> dict[str, str]:
    """`<queue>:<cursor>,...` -> cursors of the stream's queues (parts naming other queues,
    or no queue, are ignored)."""
    out: dict[str, str] = {}
    for part in (value or "").split(","):
        queue, _, cursor = part.strip().rpartition(":")
        if queue in queues:
            out[queue] = cursor
    return out


def event_id(cursors: dict[str, str]) -> str:
    return ",".join(f"{q}:{c}" for q, c in cursors.items())


def _wanted(ev: JobEvent, types: set[str], job_id: str | None) -> bool:
    return (not types or ev.type in types) and (job_id is None or ev.job_id == job_id)


async def event_stream(
    client: AsyncConveyor, queues: list[str], cursors: dict[str, str], types: set[str],
    job_id: str | None, lost: list[str], *, every_queue: bool = False,
) -> AsyncIterator[ServerSentEvent]:
    """`every_queue` (no queue and no job named): queues that appear while the stream runs
    are followed too, from the start of their log, found within `DISCOVER_S`."""
    broker = client.broker
    loop = asyncio.get_running_loop()
    async with client.waiters.listening(queues) as listener:
        for queue in lost:  # a Last-Event-ID cursor the log cannot read: resume from now
            yield ServerSentEvent(event="gap", id=event_id(cursors),
                                  data=json.dumps({"queue": queue, "cursor": None}))
        listed = loop.time()
        while True:
            if every_queue and loop.time() - listed >= DISCOVER_S \
                    and len(listener.queues) < MAX_ALL_QUEUES:
                listed = loop.time()
                for queue in (await broker.queues())[:MAX_ALL_QUEUES]:
                    if queue not in cursors and len(listener.queues) < MAX_ALL_QUEUES:
                        cursors[queue] = LOG_START
                        listener.add(queue)
            ticks = listener.ticks()
            more = False
            for queue in listener.queues:
                page: EventPage = await broker.read_events(queue, cursors[queue], READ_LIMIT)
                if page.gap:
                    yield ServerSentEvent(
                        event="gap", id=event_id(cursors),
                        data=json.dumps({"queue": queue, "cursor": cursors[queue]}))
                for ev in page.events:
                    cursors[queue] = ev.id
                    if _wanted(ev, types, job_id):
                        yield ServerSentEvent(event="job", id=event_id(cursors),
                                              data=json.dumps(ev.as_json()))
                cursors[queue] = page.cursor
                more = more or len(page.events) == READ_LIMIT
            if not more:
                await listener.changed(ticks, DISCOVER_S if every_queue else PING_S)


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/v1/events", tags=["events"])

    @router.get(
        "", summary="Follow the job event log (Server-Sent Events)",
        response_class=EventSourceResponse,
        description="Events of the given queues (and, with `job_id`, of that job's queue) "
        "as they happen, oldest first per queue; no `queue` and no `job_id`: every queue "
        "(at most 100), queues that appear later included (within 2 s, from the start of their "
        "log). Send `Last-Event-ID` (browsers do so "
        "when they reconnect) to resume after an event; a cursor the log cannot resume from "
        "is said by an `event: gap` (with `cursor` null), and the stream goes on from now.",
        responses={200: STREAM_DOC, **error_responses(401, 422, 503)},
    )
    async def stream_events(
        queue: Annotated[list[QueueName], Query(
            max_length=MAX_QUEUES, description="a queue to follow (repeatable)")] = [],  # noqa: B006
        type: Annotated[list[TypeName], Query(
            max_length=MAX_TYPES, description="only jobs of these types")] = [],  # noqa: B006
        job_id: Annotated[str | None, Query(pattern=JOB_ID_PATTERN, max_length=97)] = None,
        last_event_id: Annotated[str | None, Header(max_length=LAST_ID_MAX)] = None,
    ) -> Any:
        queues = list(dict.fromkeys(queue))
        if job_id is not None and split_job_id(job_id)[0] not in queues:
            queues.append(split_job_id(job_id)[0])
        client = await rt.ready()
        if not queues:
            queues = (await client.broker.queues())[:MAX_ALL_QUEUES]
        given = parse_last_id(last_event_id, queues)
        cursors: dict[str, str] = {}
        lost: list[str] = []
        for q in queues:
            if q in given:
                try:
                    await client.broker.read_events(q, given[q], 1)
                    cursors[q] = given[q]
                    continue
                except ValidationError:
                    lost.append(q)
            cursors[q] = await client.broker.events_tail(q)
        return EventSourceResponse(
            event_stream(client, queues, cursors, set(type), job_id, lost,
                         every_queue=not queue and job_id is None), ping=PING_S,
            headers={"Cache-Control": "no-store"})

    return router
