"""The dashboard's Schedules page (issue 15): the page shell and its fragment (every
schedule: spec in words, zone, next runs, last run and its state, counts, paused), with
pause / resume / trigger / delete buttons that call `/v1/schedules` like every action."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from conveyor.api.runtime import ApiRuntime
from conveyor.schedules.store import LIST_MAX
from conveyor.ui.render import render

#: pages of schedules the fragment reads at most (LIST_MAX each)
MAX_PAGES = 5


def build_page_router() -> APIRouter:
    router = APIRouter(prefix="/ui")

    @router.get("/schedules")
    async def schedules_page() -> Response:
        return render("schedules.html", page="schedules")

    return router


def build_fragment_router(rt: ApiRuntime) -> APIRouter:
    router = APIRouter(prefix="/ui/f")

    @router.get("/schedules")
    async def schedules_fragment() -> Response:
        client = await rt.ready()
        items, cursor = [], None
        for _ in range(MAX_PAGES):
            page = await client.schedules.list(LIST_MAX, cursor)
            items += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        return render("fragments/schedules.html", schedules=items, more=cursor is not None)

    return router
