"""`/v1/webhooks`: subscribe to job events, list, read and delete subscriptions.

The secret is in the creation's answer only (`WebhookCreated`); every other answer leaves it
out. The URL is checked as a delivery checks it (spelling, DNS, every address) before
anything is stored: a refusal is 422 `validation_error` with `details[0].reason`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from conveyor.api.body import json_response, read_model
from conveyor.api.openapi import error_responses, json_body
from conveyor.api.runtime import ApiRuntime
from conveyor.api.webhook_schemas import WebhookCreated, WebhookIn, WebhookList, WebhookOut
from conveyor.errors import ValidationError, WebhookNotFound
from conveyor.settings import Settings
from conveyor.webhooks.coverage import WebhookCoverage
from conveyor.webhooks.model import SUBSCRIPTION_ID_PATTERN
from conveyor.webhooks.store import WebhookStore, subscribe, webhook_store

WebhookIdPath = Annotated[str, Path(pattern=SUBSCRIPTION_ID_PATTERN,
                                    description="`wh_` and 32 hex digits")]


def _in_body(exc: ValidationError) -> ValidationError:
    """The model's and the URL check's details, located in the body like every 422."""
    details = exc.details if isinstance(exc.details, list) else []
    located = [{**d, "loc": ["body", *d.get("loc", [])]} if isinstance(d, dict) else d
               for d in details]
    return ValidationError(exc.message, details=located)


class _Stores:
    """One store per app, made on first use (the client connects lazily)."""

    def __init__(self, rt: ApiRuntime) -> None:
        self._rt = rt
        self._store: WebhookStore | None = None

    async def get(self) -> WebhookStore:
        client = await self._rt.ready()
        if self._store is None:
            self._store = webhook_store(client.broker)
        return self._store


def build_router(rt: ApiRuntime, settings: Settings,
                 coverage: WebhookCoverage | None = None) -> APIRouter:
    router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
    stores = _Stores(rt)

    @router.post(
        "", status_code=201, response_model=WebhookCreated, openapi_extra=json_body(WebhookIn),
        summary="Subscribe a URL to job events; the answer shows the signing secret once",
        responses=error_responses(400, 401, 413, 415, 422, 503),
    )
    async def create_webhook(request: Request) -> Response:
        body = await read_model(request, WebhookIn)
        store = await stores.get()
        try:
            sub = await subscribe(store, body.spec(), settings=settings)
        except ValidationError as exc:
            raise _in_body(exc) from None
        if coverage is not None:
            coverage.invalidate()
        return json_response(WebhookCreated.of(sub), 201,
                             {"Location": f"/v1/webhooks/{sub.id}"})

    @router.get("", response_model=WebhookList, summary="Every subscription, oldest first "
                "(no secrets)", responses=error_responses(401, 503))
    async def list_webhooks() -> Response:
        store = await stores.get()
        subs = await store.list()
        return json_response(WebhookList(items=[WebhookOut.of(s) for s in subs]))

    @router.get("/{id}", response_model=WebhookOut, summary="Read a subscription (no secret)",
                responses=error_responses(401, 404, 409, 422, 503))
    async def get_webhook(id: WebhookIdPath) -> Response:
        store = await stores.get()
        sub = await store.get(id)
        if sub is None:
            raise WebhookNotFound(f"no webhook subscription {id}", details={"id": id})
        return json_response(WebhookOut.of(sub))

    @router.delete("/{id}", status_code=204, response_class=Response,
                   summary="Delete a subscription (deliveries not yet sent are skipped)",
                   responses=error_responses(401, 404, 413, 422, 503))
    async def delete_webhook(id: WebhookIdPath) -> Response:
        store = await stores.get()
        if not await store.delete(id):
            raise WebhookNotFound(f"no webhook subscription {id}", details={"id": id})
        if coverage is not None:
            coverage.invalidate()
        return Response(status_code=204)

    return router

