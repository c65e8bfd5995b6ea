"""`/healthz` (the process answers) and `/readyz` (the broker answers too): probes for a load
balancer or an orchestrator. Never behind auth."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from conveyor.api.body import json_response
from conveyor.api.openapi import error_responses
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import Health
from conveyor.errors import BrokerUnavailable

_OK = Health(status="ok")
_READY = Health(status="ready")


def build_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health, summary="The process is up")
    async def healthz() -> Response:
        return json_response(_OK)

    @router.get("/readyz", response_model=Health, summary="The broker is reachable",
                responses=error_responses(503))
    async def readyz() -> Response:
        client = await rt.ready()
        if not await client.broker.ping():
            raise BrokerUnavailable("the broker does not answer")
        return json_response(_READY)

    return router
