"""Adds the dashboard to an API application: the page shells, the data fragments (behind the
API's keys) and the vendored static files.

The shells hold no data, so a browser can load them before it has a key; everything taken
from the broker comes through the fragments, which ask for `Authorization: Bearer <key>`
exactly as `/v1` does. Actions (retry, cancel, pause, redrive, purge) call `/v1` itself.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from starlette.staticfiles import StaticFiles

from conveyor.api.auth import ApiKeys, require_key
from conveyor.api.runtime import ApiRuntime
from conveyor.settings import get_settings
from conveyor.ui import fragments, pages, schedules, webhooks
from conveyor.ui.render import STATIC_DIR, STATIC_PATH
from conveyor.webhooks.coverage import WebhookCoverage


def install_ui(app: FastAPI, runtime: ApiRuntime, keys: ApiKeys,
               coverage: WebhookCoverage | None = None) -> None:
    guard = [Depends(require_key(keys))] if keys else []
    if coverage is None:
        coverage = WebhookCoverage(get_settings().webhook_queue)
    app.include_router(pages.build_router(), include_in_schema=False)
    app.include_router(webhooks.page_router(), include_in_schema=False)
    app.include_router(fragments.build_router(runtime, coverage), dependencies=guard,
                       include_in_schema=False)
    app.include_router(webhooks.fragment_router(runtime, coverage), dependencies=guard,
                       include_in_schema=False)
    app.include_router(schedules.build_page_router(), include_in_schema=False)
    app.include_router(schedules.build_fragment_router(runtime), dependencies=guard,
                       include_in_schema=False)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="ui-static")
