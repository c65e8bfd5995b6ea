"""The one redrive tool (and its purge twin): composes the broker's per-queue, bounded DLQ
calls across queues and pages, and paces the moves.

Filters walk each queue's dead index oldest death first (`dlq_scan`), then act on the ids
found; the broker re-checks every id (still dead, still matching) as it acts, so a job that
moved meanwhile is left alone. The death range is capped at the broker time the call starts:
a job that dies again while a long redrive runs is not chased forever.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from conveyor.brokers.base import Broker, DeadSelector
from conveyor.dlq.pacing import TokenBucket
from conveyor.dlq.selection import DeadSelection, validate_actor
from conveyor.errors import ValidationError
from conveyor.ids import split_job_id
from conveyor.queues import validate_queue_name

#: ids listed in a result at most; `count` keeps counting past it
ID_LIST_MAX = 1000
#: dead jobs looked up per broker call when nothing paces the run
PAGE = 500

#: (queue, ids, selector) -> [(old id, id now)] acted on
Act = Callable[[str, list[str], DeadSelector | None], Awaitable[list[tuple[str, str]]]]


@dataclass(slots=True)
class DlqResult:
    dry_run: bool
    #: jobs moved or purged (dry run: that would be)
    count: int = 0
    #: their ids, the first ID_LIST_MAX
    ids: list[str] = field(default_factory=list)
    #: jobs of `ids` redriven into another queue: old id -> new id
    moved_to: dict[str, str] = field(default_factory=dict)
    #: explicit ids that were not acted on (not dead, gone, or not matching)
    skipped: list[str] = field(default_factory=list)
    #: False when a paced run stopped at `max_duration_s` with jobs left: run it again
    done: bool = True

    def record(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.count += len(pairs)
        for old, new in pairs[: max(ID_LIST_MAX - len(self.ids), 0)]:
            self.ids.append(old)
            if new != old:
                self.moved_to[old] = new


async def redrive(
    broker: Broker, selection: DeadSelection, *, actor: str, dry_run: bool = False,
    rate: float | None = None, target_queue: str | None = None, limit: int | None = None,
    max_duration_s: float | None = None,
) -> DlqResult:
    """Move the selected dead jobs back to QUEUED: in their own queue, or as new jobs of
    `target_queue`. `rate` caps jobs per second; `limit` caps the jobs moved;
    `max_duration_s` stops a paced run that would wait past it (`done` False: run it
    again, the jobs moved meanwhile are no longer dead)."""
    validate_actor(actor)
    if target_queue is not None:
        validate_queue_name(target_queue)

    async def act(queue: str, ids: list[str], sel: DeadSelector | None) -> list[tuple[str, str]]:
        if dry_run:
            return [(i, i) for i in await broker.dlq_redrive(queue, ids, selector=sel,
                                                             dry_run=True)]
        if target_queue is None or target_queue == queue:
            return [(i, i) for i in await broker.dlq_redrive(queue, ids, actor=actor,
                                                             selector=sel)]
        return await broker.dlq_move(queue, ids, target_queue, actor, selector=sel)

    return await _apply(broker, selection, act, dry_run=dry_run, rate=rate, limit=limit,
                        max_duration_s=max_duration_s)


async def purge(
    broker: Broker, selection: DeadSelection, *, dry_run: bool = False,
    limit: int | None = None,
) -> DlqResult:
    """Delete the selected dead jobs for good."""

    async def act(queue: str, ids: list[str], sel: DeadSelector | None) -> list[tuple[str, str]]:
        gone = await broker.dlq_purge(queue, ids, selector=sel, dry_run=dry_run)
        return [(i, i) for i in gone]

    return await _apply(broker, selection, act, dry_run=dry_run, rate=None, limit=limit)


async def _apply(
    broker: Broker, selection: DeadSelection, act: Act, *, dry_run: bool,
    rate: float | None, limit: int | None, max_duration_s: float | None = None,
) -> DlqResult:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ValidationError("limit must be a positive integer", details={"limit": limit})
    if max_duration_s is not None and (
        isinstance(max_duration_s, bool) or not isinstance(max_duration_s, int | float)
        or not math.isfinite(max_duration_s) or max_duration_s <= 0
    ):
        raise ValidationError("max_duration_s must be a positive number of seconds",
                              details={"max_duration_s": str(max_duration_s)})
    bucket = TokenBucket(rate) if rate is not None else None
    if dry_run:
        bucket = None  # nothing moves, nothing to pace
    batch = bucket.burst if bucket is not None else PAGE
    result = DlqResult(dry_run=dry_run)

    deadline = None if max_duration_s is None else time.monotonic() + max_duration_s

    def left() -> int:
        if not result.done:
            return 0
        return PAGE if limit is None else min(PAGE, limit - result.count)

    acted: set[str] = set()
    tried: set[str] = set()

    async def run(queue: str, ids: list[str], sel: DeadSelector | None) -> None:
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch][: left()]
            if not chunk:
                return
            if bucket is not None:
                if deadline is not None and (
                    time.monotonic() + bucket.wait_s(len(chunk)) > deadline
                ):
                    result.done = False  # the next batch would wait past the bound
                    return
                await bucket.take(len(chunk))
            pairs = await act(queue, chunk, sel)
            result.record(pairs)
            tried.update(chunk)
            acted.update(old for old, _ in pairs)

    if selection.ids:
        groups: dict[str, list[str]] = {}
        for job_id in dict.fromkeys(selection.ids):
            groups.setdefault(split_job_id(job_id)[0], []).append(job_id)
        for queue, ids in groups.items():
            await run(queue, ids, None)
            if not result.done:
                break
        # a run stopped by its time bound has not looked at the ids it did not reach
        result.skipped = [i for i in dict.fromkeys(selection.ids)
                          if i not in acted and (result.done or i in tried)][:ID_LIST_MAX]
        return result

    queues = [selection.queue] if selection.queue is not None else await broker.queues()
    selector = selection.selector(cap_ms=await broker.now_ms() + 1)
    for queue in queues:
        if left() <= 0:
            break
        cursor: str | None = None
        while left() > 0:
            page = await broker.dlq_scan(queue, selector, limit=left(), cursor=cursor)
            cursor = page.cursor
            await run(queue, page.ids, selector)
            if page.done:
                break
    return result
