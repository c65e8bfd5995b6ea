"""The dashboard's data: HTML fragments the pages poll (htmx, every ~2 s), read through the
API's client and guarded by the API's keys (`install_ui` adds the dependency).

A bad filter or an unknown job is answered 200 with a message in the fragment, because the
page swaps in only successful answers; 401 and 503 stay errors, which the page's script
turns into the key prompt and the "disconnected" mark.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from conveyor.api.queries import (
    ERROR_CODE_RE,
    JOB_ID_RE,
    QUEUE_RE,
    TYPE_RE,
    list_page,
    queue_list,
    queue_outs,
    worker_out,
)
from conveyor.api.runtime import ApiRuntime
from conveyor.api.schemas import CURSOR_MAX
from conveyor.brokers.base import KeyInfo, Page
from conveyor.client import AsyncConveyor
from conveyor.dlq.selection import dead_filter
from conveyor.errors import CorruptJob, JobNotFound, ValidationError
from conveyor.ids import UID_RE
from conveyor.joblogs import MAX_LINES, decode_lines
from conveyor.jobs import Job, JobState
from conveyor.timeutil import ms_to_datetime
from conveyor.ui.render import STATES, render
from conveyor.webhooks.coverage import WebhookCoverage

Text = Annotated[str, Query(max_length=200)]
PAGE_SIZE = 50
#: how many of the newest jobs an id fragment is looked for in
SEARCH_SCAN = 500
#: the newest dead jobs the DLQ page lists (bulk actions reach every match)
DLQ_PAGE = 200

#: queues the overview lists (by name); its totals count every queue
OVERVIEW_QUEUES = 200

#: broker calls one list may take: a page may come back short while more remain
MAX_PAGE_CALLS = 8
#: running jobs the workers page reads (one `get_many`, however many workers hold them)
RUNNING_SHOWN = 500
#: busiest limit keys a queue's page shows (flow control)
FLOW_KEYS = 10


def _key_row(k: KeyInfo) -> dict[str, object]:
    """A limit key as the queue page shows it: held until when, or until a permit."""
    until = ms_to_datetime(k.held_until_ms) if k.held_until_ms is not None else None
    return {"key": k.key, "backlog": k.backlog, "running": k.running, "held": k.held,
            "until": until}


def _bad_filter(value: str, pattern: re.Pattern[str], what: str) -> str | None:
    # fullmatch: the patterns end in `$`, which `match` lets a trailing newline through
    return f"“{value}” is not a valid {what}" if value and not pattern.fullmatch(value) else None


async def _collect(client: AsyncConveyor, *, queue: str | None, state: JobState | None,
                   type: str | None, want: int, cursor: str | None) -> Page:
    """Up to `want` jobs, newest first, following the broker's cursor over short pages (at
    most `MAX_PAGE_CALLS` calls); `next_cursor` continues after the last one returned."""
    items: list[Job] = []
    for _ in range(MAX_PAGE_CALLS):
        page = await list_page(client, queue=queue, state=state, type=type,
                               limit=want - len(items), cursor=cursor)
        items += page.items
        cursor = page.next_cursor
        if cursor is None or len(items) >= want:
            break
    return Page(items=items, next_cursor=cursor)


async def _search(rt: ApiRuntime, queue: str, state: JobState | None, type: str | None,
                  q: str) -> tuple[list[Job], str]:
    """A whole id (or its 32 hex digits) is read directly, however old; a fragment of one is
    looked for among the newest `SEARCH_SCAN` listed jobs. Returns the jobs and a note."""
    client = await rt.ready()
    job_id = f"{queue}:{q.lower()}" if UID_RE.fullmatch(q.lower()) else q
    if JOB_ID_RE.fullmatch(job_id):
        try:
            return [await client.get(job_id)], "looked up by id"
        except JobNotFound:
            return [], "no job has this id"
        except CorruptJob as exc:
            return [], exc.message
    page = await _collect(client, queue=queue, state=state, type=type, want=SEARCH_SCAN,
                          cursor=None)
    needle = q.lower()
    found = [j for j in page.items if needle in j.id.lower()]
    return found, f"ids containing “{q}” among the {len(page.items)} newest jobs"


def known_types(client: AsyncConveyor, items: list[Job]) -> list[str]:
    """What a type filter offers: the types this server's registry knows, and those seen in
    the jobs listed."""
    return sorted(set(client.registry.types()) | {j.type for j in items if j.type})


def build_router(rt: ApiRuntime, coverage: WebhookCoverage | None = None) -> APIRouter:
    router = APIRouter(prefix="/ui/f")

    @router.get("/overview")
    async def overview() -> Response:
        client = await rt.ready()
        stats, workers = await asyncio.gather(client.stats(), client.workers())
        gap = None if coverage is None else await coverage.check(client.broker, workers)
        shown = dict(sorted(stats.items())[:OVERVIEW_QUEUES])
        queues = queue_outs(shown, await client.paused_queues(list(shown)))
        totals = {s: sum(c.get(s, 0) for c in stats.values()) for s in STATES}
        return render(
            "fragments/overview.html", queues=queues, totals=totals, workers=len(workers),
            slots=sum(w.concurrency for w in workers), total_queues=len(stats), gap=gap,
        )

    @router.get("/queues/{name}")
    async def queue(name: str, state: Text = "", type: Text = "", q: Text = "",
                    cursor: Annotated[str, Query(max_length=CURSOR_MAX)] = "") -> Response:
        problem = (_bad_filter(name, QUEUE_RE, "queue name")
                   or _bad_filter(type, TYPE_RE, "job type")
                   or (f"“{state}” is not a state" if state and state not in STATES else None))
        if problem:
            return render("fragments/problem.html", message=problem)
        client = await rt.ready()
        summary = (await queue_list(client, [name]))[0]
        limits, busiest = await asyncio.gather(client.get_limits(name),
                                               client.limit_keys(name, FLOW_KEYS))
        job_state = JobState(state) if state else None
        note, next_cursor = "", None
        q = q.strip()
        if q:
            items, note = await _search(rt, name, job_state, type or None, q)
        else:
            try:
                page = await _collect(client, queue=name, state=job_state, type=type or None,
                                      want=PAGE_SIZE, cursor=cursor or None)
            except ValidationError:
                return render("fragments/problem.html",
                              message="this page link has expired: go back to the newest jobs")
            items, next_cursor = page.items, page.next_cursor
        return render("fragments/queue.html", queue=summary, state=state, items=items,
                      note=note, next_cursor=next_cursor, paged=bool(cursor),
                      types=known_types(client, items),
                      limits=limits, keys=[_key_row(k) for k in busiest])

    @router.get("/jobs/{job_id}")
    async def job(job_id: str) -> Response:
        if not JOB_ID_RE.fullmatch(job_id):
            return render("fragments/problem.html",
                          message=f"“{job_id}” is not a job id (<queue>:<32 hex digits>)")
        client = await rt.ready()
        try:
            found = await client.get(job_id)
        except JobNotFound:
            return render("fragments/problem.html", message=f"No job {job_id}: it may have "
                          "been purged or have expired after its retention period.")
        except CorruptJob as exc:  # corrupt_job: say what is wrong with the record
            return render("fragments/problem.html", message=f"{exc.message} ({exc.code})")
        lines = decode_lines(await client.broker.job_logs(job_id))
        return render("fragments/job.html", job=found, log_lines=lines, log_max=MAX_LINES)

    @router.get("/dlq")
    async def dlq(queue: Text = "", type: Text = "", error_code: Text = "") -> Response:
        problem = (_bad_filter(queue, QUEUE_RE, "queue name")
                   or _bad_filter(type, TYPE_RE, "job type")
                   or _bad_filter(error_code, ERROR_CODE_RE, "error code"))
        if problem:
            return render("fragments/problem.html", message=problem)
        client = await rt.ready()
        stats, page = await asyncio.gather(
            client.stats([queue] if queue else None),
            _collect(client, queue=queue or None, state=JobState.DEAD, type=type or None,
                     want=DLQ_PAGE, cursor=None),
        )
        codes = Counter(j.last_error.code for j in page.items if j.last_error)
        keep = dead_filter(error_code=error_code or None)
        items = page.items if keep is None else [j for j in page.items if keep(j)]
        dead_by_queue = {q: c.get(JobState.DEAD, 0) for q, c in sorted(stats.items())}
        return render(
            "fragments/dlq.html", items=items, codes=codes.most_common(8),
            dead_by_queue={q: n for q, n in dead_by_queue.items() if n},
            dead_total=sum(dead_by_queue.values()), more=page.next_cursor is not None,
            listed=len(page.items), queue=queue, error_code=error_code,
            types=known_types(client, page.items),
        )

    @router.get("/workers")
    async def workers() -> Response:
        client = await rt.ready()
        listed = sorted((worker_out(w) for w in await client.workers()),
                        key=lambda w: (w.host, w.pid))
        # what each holds: one bounded read of every running id, never one call per job
        ids = [j for w in listed for j in w.jobs if JOB_ID_RE.fullmatch(j)][:RUNNING_SHOWN]
        jobs = {j.id: j for j in await client.get_many(ids) if j is not None} if ids else {}
        return render("fragments/workers.html", workers=listed, jobs=jobs,
                      shown=RUNNING_SHOWN)

    return router
