"""The dashboard's Webhooks page: the subscriptions (never their secrets), each with a
delete button (a `DELETE /v1/webhooks/{id}` call from the page, like every action), and the
warning when no live worker serves the deliveries' queue.

`page_router` is the shell (no data, no key); `fragment_router` the data, behind the keys.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import Response

from conveyor.api.runtime import ApiRuntime
from conveyor.api.webhook_schemas import WebhookOut
from conveyor.ui.render import render
from conveyor.webhooks.coverage import WebhookCoverage, unserved
from conveyor.webhooks.store import webhook_store


def page_router() -> APIRouter:
    router = APIRouter(prefix="/ui")

    @router.get("/webhooks")
    async def webhooks_page() -> Response:
        return render("webhooks.html", page="webhooks")

    return router


def fragment_router(rt: ApiRuntime, coverage: WebhookCoverage) -> APIRouter:
    router = APIRouter(prefix="/ui/f")

    @router.get("/webhooks")
    async def webhooks_fragment() -> Response:
        client = await rt.ready()
        subs, workers = await asyncio.gather(webhook_store(client.broker).list(),
                                             client.workers())
        # WebhookOut has no secret field: the page cannot show one by mistake
        return render("fragments/webhooks.html", subs=[WebhookOut.of(s) for s in subs],
                      gap=unserved(subs, workers, coverage.queue), queue=coverage.queue)

    return router
