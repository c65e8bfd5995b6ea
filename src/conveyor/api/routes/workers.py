"""`/v1/workers`: the live workers (those still heart-beating) and the jobs each holds."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from conveyor.api.body import json_response
from conveyor.api.openapi import error_responses
from conveyor.api.queries import worker_out
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import WorkerList


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/v1/workers", tags=["workers"])

    @router.get("", response_model=WorkerList, summary="Live workers and their jobs",
                responses=error_responses(401, 503))
    async def list_workers() -> Response:
        client = await rt.ready()
        workers = await client.workers()
        return json_response(WorkerList(items=[worker_out(w) for w in workers]))

    return router
