"""`/healthz` (the process answers) and `/readyz` (the broker answers and is safe to take
work): probes for a load balancer or an orchestrator. Never behind auth.

`/readyz` answers within `READY_TIMEOUT_S` whatever the broker does: a stalled Redis makes
it 503 at once rather than after the command timeout (probes time out in about a second).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from conveyor.api.body import json_response
from conveyor.api.openapi import error_responses
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import Health, Ready, ReadyWarning
from conveyor.errors import BrokerUnavailable
from conveyor.webhooks.coverage import UNSERVED, WebhookCoverage

#: the longest /readyz waits for the broker
READY_TIMEOUT_S = 0.9
_OK = Health(status="ok")


def _consume(task: asyncio.Future[Any]) -> None:
    """A probe given up on: its end (cancelled, or an error) is not news."""
    if not task.cancelled():
        task.exception()


def build_router(rt: ApiRuntime, webhooks: WebhookCoverage | None = None) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health, summary="The process is up")
    async def healthz() -> Response:
        return json_response(_OK)

    async def probe() -> list[ReadyWarning]:
        client = await rt.ready()
        await client.broker.check_ready()
        warnings = []
        if webhooks is not None and (gap := await webhooks.check(client.broker)) is not None:
            warnings.append(ReadyWarning(code=UNSERVED, message=gap.message))
        return warnings

    @router.get("/readyz", response_model=Ready,
                summary="The broker is reachable and safe to use",
                responses=error_responses(503))
    async def readyz() -> Response:
        # The probe runs as a task the answer does not wait for past the bound: cancelling a
        # call stuck on a stalled Redis can take its client a while longer to clean up.
        task = asyncio.ensure_future(probe())
        done, _ = await asyncio.wait({task}, timeout=READY_TIMEOUT_S)
        if not done:
            task.cancel()
            task.add_done_callback(_consume)
            raise BrokerUnavailable(f"the broker did not answer within {READY_TIMEOUT_S} s")
        return json_response(Ready(status="ready", warnings=task.result()))

    return router
