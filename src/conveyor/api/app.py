"""`build_api`: the HTTP API's FastAPI application (`/v1`, health, metrics, docs), assembled
from its parts. `conveyor.web.create_app` adds the dashboard to it; this package never
imports the dashboard.

Stateless: it holds one client and nothing else, so any number of processes can run behind a
load balancer. Pass a client to share one (tests, embedding); otherwise the app builds one
from the settings and closes it on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Depends, FastAPI
from starlette.responses import Response

from conveyor import __version__, tracing
from conveyor.api.auth import ApiKeys, parse_keys, require_key
from conveyor.api.docs import install_docs
from conveyor.api.envelope import ErrorEnvelope
from conveyor.api.errors import install_error_handlers
from conveyor.api.fastpath import EnqueueFastPath
from conveyor.api.guard import BrowserGuard
from conveyor.api.limits import BodyLimitMiddleware
from conveyor.api.metrics import ApiMetrics, MetricsMiddleware
from conveyor.api.openapi import install_openapi, operation_id
from conveyor.api.routes import (
    dlq,
    events,
    health,
    jobs,
    limits,
    queues,
    schedules,
    webhooks,
    workers,
)
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import BatchIn, JobIn
from conveyor.api.tracecontext import TraceContextMiddleware
from conveyor.client import AsyncConveyor
from conveyor.errors import BrokerUnavailable, ConveyorError
from conveyor.settings import Settings, get_settings
from conveyor.webhooks.coverage import WebhookCoverage

log = logging.getLogger("conveyor.api")

DESCRIPTION = """HTTP interface of Conveyor, a distributed job scheduler.

Every error reads `{"error": {"code", "message", "details"}}` with a stable `code`. When
`CONVEYOR_API_KEYS` is set, every `/v1` route needs `Authorization: Bearer <key>`."""


@dataclass(frozen=True, slots=True)
class Api:
    """The API's application and what a front end added to it shares: the runtime (its one
    client), the bearer keys and the webhook coverage check."""

    app: FastAPI
    runtime: ApiRuntime
    keys: ApiKeys
    coverage: WebhookCoverage


def build_api(
    client: AsyncConveyor | None = None, settings: Settings | None = None, *,
    fast_path: bool = True,
) -> Api:
    """`fast_path=False` serves `POST /v1/jobs` through FastAPI too (same behaviour, slower);
    the tests use it to hold both paths to one contract."""
    settings = settings if settings is not None else get_settings()
    owns_client = client is None
    if client is None:
        client = AsyncConveyor.from_url(settings=settings)
    runtime = ApiRuntime(client, owns_client=owns_client)
    keys = ApiKeys(parse_keys(settings.api_keys))
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not keys:
            log.warning("api_auth_disabled", extra={
                "hint": "set CONVEYOR_API_KEYS (comma-separated) to require bearer keys"})
        try:
            await runtime.ready()  # a misconfigured broker (e.g. eviction on) stops start-up
        except BrokerUnavailable as exc:
            log.warning("broker_unavailable_at_start", extra={"error": exc.message})
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="Conveyor", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        openapi_url="/openapi.json", docs_url=None, redoc_url=None,  # docs.py serves both
        generate_unique_id_function=operation_id,  # `get_job` -> operationId `getJob`
        # Recent FastAPI looks up OpenTelemetry providers on every request (a tenth of the
        # hot path); the API exports its own Prometheus metrics. Older FastAPI ignores this.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    guard = [Depends(require_key(keys))] if keys else []
    # Order matters a little: routes are matched in turn, and POST /v1/jobs is the hot path.
    for module in (jobs, queues, limits, dlq, workers, events, schedules):
        app.include_router(module.build_router(runtime), dependencies=guard)
    coverage = WebhookCoverage(settings.webhook_queue)  # readyz and the dashboard warn
    app.include_router(webhooks.build_router(runtime, settings, coverage), dependencies=guard)
    app.include_router(health.build_router(runtime, coverage))
    install_docs(app)  # /docs and /redoc, from vendored files

    @app.get("/metrics", include_in_schema=False, dependencies=guard)
    async def metrics_endpoint() -> Response:
        try:
            await metrics.refresh(await runtime.ready())
        except ConveyorError:  # unreachable or misconfigured: still serve the request metrics
            metrics.broker_up.set(0)
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    install_error_handlers(app)
    install_openapi(app, [JobIn, BatchIn])
    # The last added is the outermost: metrics see every answer, 413s included; the envelope
    # wraps only what FastAPI serves (the fast path answers its own errors).
    app.add_middleware(ErrorEnvelope)
    if fast_path:
        app.add_middleware(EnqueueFastPath, runtime=runtime, keys=keys)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(BrowserGuard, allowed_origins=settings.allowed_origins.split(","))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if tracing.INSTALLED:  # the caller's trace, for every route (the fast path included)
        app.add_middleware(TraceContextMiddleware)
    app.state.runtime = runtime
    app.state.metrics = metrics
    return Api(app, runtime, keys, coverage)
