"""`/v1/workers`: the live workers (those still heart-beating) and the jobs each holds."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from conveyor.api.body import json_response
from conveyor.api.openapi import error_responses
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import WorkerList, WorkerOut
from conveyor.brokers.base import WorkerInfo
from conveyor.timeutil import ms_to_datetime


def worker_out(info: WorkerInfo) -> WorkerOut:
    return WorkerOut(
        id=info.id, host=info.host, pid=info.pid, queues=list(info.queues),
        concurrency=info.concurrency, jobs=list(info.jobs),
        started_at=ms_to_datetime(info.started_at_ms),
        last_seen_at=ms_to_datetime(info.last_seen_ms) if info.last_seen_ms else None,
        metrics_url=info.metrics_url if isinstance(info.metrics_url, str) else None,
    )


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/v1/workers", tags=["workers"])

    @router.get("", response_model=WorkerList, summary="Live workers and their jobs",
                responses=error_responses(401, 503))
    async def list_workers() -> Response:
        client = await rt.ready()
        workers = await client.workers()
        return json_response(WorkerList(items=[worker_out(w) for w in workers]))

    return router
