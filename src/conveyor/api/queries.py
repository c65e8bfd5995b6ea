"""The reads the API's routes and the dashboard share: queue summaries, a page of jobs,
a worker as the API shows it, and the name patterns both check filters against.

Route modules and `conveyor.ui` import this; it imports neither (so the dashboard never
reaches into a route module, and the API never into the dashboard).
"""

from __future__ import annotations

import re

from conveyor.api.schemas import JOB_ID_PATTERN, QueueOut, WorkerOut
from conveyor.brokers.base import Page, WorkerInfo, queue_not_found
from conveyor.client import AsyncConveyor
from conveyor.errors import ValidationError
from conveyor.jobs import JobState
from conveyor.queues import QUEUE_NAME_RE, TYPE_NAME_RE
from conveyor.timeutil import ms_to_datetime

#: what a filter is checked against (`fullmatch`: the patterns end in `$`, which `match`
#: lets a trailing newline through)
QUEUE_RE = QUEUE_NAME_RE
TYPE_RE = ERROR_CODE_RE = TYPE_NAME_RE
JOB_ID_RE = re.compile(JOB_ID_PATTERN)


def queue_outs(
    stats: dict[str, dict[str, int]], paused: set[str], ages: dict[str, float] | None = None,
    limited: dict[str, int] | None = None,
) -> list[QueueOut]:
    ages, limited = ages or {}, limited or {}
    return [
        QueueOut(name=q, counts={str(s): counts.get(str(s), 0) for s in JobState},
                 paused=q in paused, oldest_ready_age_s=ages.get(q, 0.0),
                 limited=limited.get(q, 0))
        for q, counts in stats.items()
    ]


async def queue_list(client: AsyncConveyor, names: list[str] | None = None) -> list[QueueOut]:
    """Counts, paused flags, ready ages and limited counts of these queues (default: every
    queue), each read in one pipeline."""
    stats = await client.stats(names)
    return queue_outs(stats, await client.paused_queues(list(stats)),
                      await client.ready_ages(list(stats)),
                      await client.limited_counts(list(stats)))


async def known_queue(client: AsyncConveyor, name: str) -> None:
    """`QueueNotFound` (404 `queue_not_found`) unless the broker knows the queue: it has
    received a job and was not forgotten since (`queues()`), or it is paused (a queue paused
    before its first job is known, as `forget_queue` knows it)."""
    if name not in await client.broker.queues() and not await client.is_paused(name):
        raise queue_not_found(name)


async def list_page(
    client: AsyncConveyor, *, queue: str | None, state: JobState | None, type: str | None,
    limit: int, cursor: str | None,
) -> Page:
    """One page of `client.list_jobs`; a cursor the broker cannot read is a 422 on `cursor`."""
    try:
        return await client.list_jobs(
            queue=queue, state=state, type=type, limit=limit, cursor=cursor
        )
    except ValidationError as exc:
        if cursor is None or not (isinstance(exc.details, dict) and "cursor" in exc.details):
            raise
        raise ValidationError("invalid cursor: pass a next_cursor of a previous page", details=[
            {"loc": ["query", "cursor"], "msg": exc.message, "type": "value_error"}]) from None


def worker_out(info: WorkerInfo) -> WorkerOut:
    return WorkerOut(
        id=info.id, host=info.host, pid=info.pid, queues=list(info.queues),
        concurrency=info.concurrency, jobs=list(info.jobs),
        started_at=ms_to_datetime(info.started_at_ms),
        last_seen_at=ms_to_datetime(info.last_seen_ms) if info.last_seen_ms else None,
        metrics_url=info.metrics_url if isinstance(info.metrics_url, str) else None,
    )
