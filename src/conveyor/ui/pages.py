"""The dashboard's pages: shells holding layout, filters and the places the fragments fill.

They read nothing from the broker (so they need no key); what the URL carries (a queue name,
a job id, filters) is echoed back escaped and checked by the fragment that uses it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import RedirectResponse, Response

from conveyor.ui.render import render

Text = Annotated[str, Query(max_length=200)]


def build_router() -> APIRouter:
    router = APIRouter(prefix="/ui")

    @router.get("")
    async def root() -> Response:
        return RedirectResponse("/ui/", status_code=308)

    @router.get("/")
    async def overview() -> Response:
        return render("overview.html", page="overview")

    @router.get("/queues/{name}")
    async def queue(
        name: Annotated[str, Path(max_length=200)], state: Text = "", type: Text = "",
        q: Text = "",
    ) -> Response:
        return render("queue.html", page="queue", name=name, state=state, type=type, q=q)

    @router.get("/jobs/{job_id}")
    async def job(job_id: Annotated[str, Path(max_length=200)]) -> Response:
        return render("job.html", page="job", job_id=job_id)

    @router.get("/dlq")
    async def dlq(queue: Text = "", type: Text = "", error_code: Text = "") -> Response:
        return render("dlq.html", page="dlq", queue=queue, type=type, error_code=error_code)

    @router.get("/workers")
    async def workers() -> Response:
        return render("workers.html", page="workers")

    return router
