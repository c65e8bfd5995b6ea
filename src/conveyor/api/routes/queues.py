"""`/v1/queues`: job counts per state for each queue, and pausing / resuming deliveries.

A paused queue still accepts jobs; workers take none from it until it is resumed.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from conveyor.api.body import json_response
from conveyor.api.openapi import error_responses
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import QUEUE_PATTERN, QueueList, QueueOut
from conveyor.client import AsyncConveyor
from conveyor.jobs import JobState

QueuePath = Annotated[str, Path(pattern=QUEUE_PATTERN, description="queue name")]


async def queue_list(client: AsyncConveyor, names: list[str] | None = None) -> list[QueueOut]:
    stats = await client.stats(names)
    paused = await asyncio.gather(*(client.is_paused(q) for q in stats))
    return [
        QueueOut(name=q, counts={str(s): counts.get(str(s), 0) for s in JobState}, paused=p)
        for (q, counts), p in zip(stats.items(), paused, strict=True)
    ]


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/v1/queues", tags=["queues"])

    @router.get("", response_model=QueueList, summary="Every queue: counts and paused",
                responses=error_responses(401, 503))
    async def list_queues() -> Response:
        client = await rt.ready()
        return json_response(QueueList(items=await queue_list(client)))

    @router.get("/{name}", response_model=QueueOut, summary="One queue: counts and paused",
                description="Any valid name answers: a queue that never had a job has "
                "zero counts.", responses=error_responses(401, 422, 503))
    async def get_queue(name: QueuePath) -> Response:
        client = await rt.ready()
        return json_response((await queue_list(client, [name]))[0])

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

    return router
