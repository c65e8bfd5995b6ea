"""Waiting for jobs to finish, race-free, with one log follower per queue per process.

A waiter first makes sure its queue's follower is running (it has read the log's tail),
registers itself, and only then reads the job: a job finished before that read is seen
finished by it; a job finishing after it writes its terminal event after the follower's
position, and the follower hands that event to every waiter of the job. So no wait misses
a finish, whatever the timing (BullMQ's `waitUntilFinished` subscribes after it reads).

Each follower reads its queue's log in pages of up to 1,000 events and blocks on the log
(`wait_events`) between pages: one connection per followed queue, however many waiters.
The waiters' own reads of their jobs (one as they register, one when woken) are coalesced
by `_Reads`: every read asked while a batch is in flight goes into the next `get_many`, so
10,000 waiters arriving together cost a few pipelined batches on one connection, never a
connection (or a round trip) each.
After a gap in the log (events trimmed before they were read) or a broker error, the
follower re-reads the waited-on jobs itself, in batches of 1,000, and wakes those finished.
Every `recheck_s` (5 s) with waiters, the follower re-reads them the same way: a job removed
without an event (retention, a queue forgotten) then answers JobNotFound instead of waiting
out its timeout, and with events off (CONVEYOR_EVENTS_MAXLEN=0) a finish is seen within
`recheck_s`. A follower with no waiter left stops after `idle_s`.

A wait's own timeout bounds it whatever the follower does: it never awaits the follower
(its start, a wake-up) past its deadline, and then answers after one more read of its job
(bounded like any broker call: CONVEYOR_REDIS_TIMEOUT_S, SQLite's busy timeout). Nothing
here uses `asyncio.wait_for`: on Python 3.11 it returns the inner result when it is
cancelled just as that result arrives, losing the cancel (gh-86296, fixed in 3.12), so a
waiter cancelled as it was woken would have waited on, and a follower cancelled by `close`
could run on. redis-py's commands have that window too (each write is a `wait_for`): a
follower asked to stop also sees `stopping` at its next turn, and `close` cancels again
until it has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from conveyor.brokers.base import Broker
from conveyor.errors import ConveyorError, JobNotFound
from conveyor.ids import split_job_id
from conveyor.jobs import TERMINAL_STATES, Job

log = logging.getLogger("conveyor.events.waiters")

READ_LIMIT = 1000
#: how long one `wait_events` call blocks; the follower checks for idleness in between
BLOCK_S = 1.0
IDLE_S = 10.0
#: how often a follower with waiters re-reads their jobs, events or not
RECHECK_S = 5.0
RETRY_S = 0.5
#: how often `close` cancels a follower again while it has not stopped (a lost cancel)
RECANCEL_S = 0.1


async def _within(fut: asyncio.Future[None], timeout_s: float) -> bool:
    """True once `fut` is done, False after `timeout_s`; `fut` is left alone either way,
    and a cancel of the caller is never lost (see the module docstring)."""
    done, _ = await asyncio.wait({fut}, timeout=max(timeout_s, 0.0))
    return bool(done)


@dataclass(eq=False)
class _Follower:
    queue: str
    ready: asyncio.Future[None]
    cursor: str = "0"
    waiters: dict[str, set[asyncio.Future[None]]] = field(
        default_factory=lambda: defaultdict(set))
    task: asyncio.Task[None] | None = None
    #: resolved (and replaced) whenever the log moved on, or may have: what listeners await
    tick: asyncio.Future[None] | None = None
    #: listeners (SSE streams) holding the follower alive
    listeners: int = 0
    #: set by `close`: the follower ends at its next turn even if a cancel was lost
    stopping: bool = False

    def ticked(self) -> None:
        if self.tick is not None and not self.tick.done():
            self.tick.set_result(None)
        self.tick = asyncio.get_running_loop().create_future()

    def wake(self, job_id: str | None = None) -> None:
        """Wake the waiters of one job (None: of every job)."""
        groups = [self.waiters.get(job_id, set())] if job_id else list(self.waiters.values())
        for group in groups:
            for fut in group:
                if not fut.done():
                    fut.set_result(None)


class _Reads:
    """Coalesced job reads: one batch in flight at a time (one pooled connection), every
    read asked meanwhile joins the next batch (`get_many`, READ_LIMIT ids per call)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._pending: dict[str, list[asyncio.Future[Job | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, job_id: str) -> Job:
        """The job as stored after this call began; JobNotFound if there is none."""
        job = await self.find(job_id)
        if job is None:
            raise JobNotFound(f"job {job_id} not found", details={"job_id": job_id})
        return job

    def find(self, job_id: str) -> asyncio.Future[Job | None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Job | None] = loop.create_future()
        self._pending.setdefault(job_id, []).append(fut)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name="conveyor-wait-reads")
        return fut

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            ids = list(batch)
            try:
                for start in range(0, len(ids), READ_LIMIT):
                    chunk = ids[start : start + READ_LIMIT]
                    jobs = await self._broker.get_many(chunk)
                    for job_id, job in zip(chunk, jobs, strict=True):
                        for fut in batch.pop(job_id):
                            if not fut.done():
                                fut.set_result(job)
            except Exception as exc:  # the unread ones fail as their own call would
                for futs in batch.values():
                    for fut in futs:
                        if not fut.done():
                            fut.set_exception(exc)
            except BaseException:  # cancelled (close): so are the reads asked
                for futs in (*batch.values(), *self._pending.values()):
                    for fut in futs:
                        fut.cancel()
                self._pending.clear()
                raise

    async def close(self) -> None:
        task = self._task
        while task is not None and not task.done():  # a cancel can be lost: cancel again
            task.cancel()
            await asyncio.wait({task}, timeout=RECANCEL_S)
        # reads a task cancelled before it started never saw: cancelled here, so no caller
        # waits on them for ever
        for futs in self._pending.values():
            for fut in futs:
                fut.cancel()
        self._pending.clear()


class Waiters:
    """The waiters and followers of one client (one per process, usually)."""

    def __init__(self, broker: Broker, *, idle_s: float = IDLE_S,
                 recheck_s: float = RECHECK_S) -> None:
        self._broker = broker
        self._idle_s = idle_s
        self._recheck_s = recheck_s
        self._followers: dict[str, _Follower] = {}
        self._reads = _Reads(broker)

    @property
    def following(self) -> list[str]:
        """The queues followed right now (one follower each)."""
        return sorted(self._followers)

    async def wait(self, job_id: str, timeout_s: float) -> Job:
        """The job once it is SUCCEEDED, DEAD or CANCELLED, or as it is when `timeout_s`
        has passed (the caller tells them apart by its state)."""
        queue, _ = split_job_id(job_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        while True:
            follower = self._follow(queue)
            if not follower.ready.done() and not await _within(
                    follower.ready, deadline - loop.time()):
                return await self._reads.get(job_id)  # the log cannot be read: the job as it is
            fut: asyncio.Future[None] = loop.create_future()
            follower.waiters[job_id].add(fut)  # registered before the read: see the docstring
            try:
                job = await self._reads.get(job_id)
                remaining = deadline - loop.time()
                if job.state in TERMINAL_STATES or remaining <= 0 or follower.stopping:
                    return job
                if self._followers.get(queue) is follower:
                    await _within(fut, remaining)
                    if follower.stopping:  # `close`: the job as last read, no new follower
                        return job
            finally:
                group = follower.waiters.get(job_id)
                if group is not None:
                    group.discard(fut)
                    if not group:
                        del follower.waiters[job_id]

    def _follow(self, queue: str) -> _Follower:
        follower = self._followers.get(queue)
        if follower is None or follower.task is None or follower.task.done():
            loop = asyncio.get_running_loop()
            held = follower.listeners if follower is not None else 0
            follower = _Follower(queue, ready=loop.create_future(), listeners=held)
            self._followers[queue] = follower
            follower.task = loop.create_task(self._run(follower),
                                             name=f"conveyor-follow-{queue}")
        return follower

    async def _run(self, f: _Follower) -> None:
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        next_check = idle_since + self._recheck_s
        broken = False
        try:
            while not f.stopping:
                try:
                    if not f.ready.done():
                        f.cursor = await self._broker.events_tail(f.queue)
                        f.ready.set_result(None)
                    page = await self._broker.read_events(f.queue, f.cursor, READ_LIMIT)
                    due = bool(f.waiters) and loop.time() >= next_check
                    if page.gap or broken or due:
                        await self._recheck(f)
                        broken = False
                        next_check = loop.time() + self._recheck_s
                    if page.events or page.gap:
                        f.ticked()
                    for ev in page.events:
                        if ev.state in TERMINAL_STATES:
                            f.wake(ev.job_id)
                    f.cursor = page.cursor
                    if f.waiters or f.listeners:
                        idle_since = loop.time()
                    elif loop.time() - idle_since >= self._idle_s:
                        return
                    if len(page.events) < READ_LIMIT:
                        block = BLOCK_S if not f.waiters else min(
                            BLOCK_S, max(next_check - loop.time(), 0.01))
                        await self._broker.wait_events(f.queue, f.cursor, block)
                except ConveyorError as exc:
                    log.warning("event_follower_error",
                                extra={"queue": f.queue, "error": str(exc)[:200]})
                    broken = True  # events may have been missed: waiters re-read their jobs
                    await asyncio.sleep(RETRY_S)
        finally:
            if self._followers.get(f.queue) is f:
                del self._followers[f.queue]
            if not f.ready.done():
                f.ready.set_result(None)
            f.wake()
            f.ticked()  # a waiter left behind re-reads its job and starts a new follower

    @contextlib.asynccontextmanager
    async def listening(self, queues: Sequence[str]) -> AsyncIterator[Listener]:
        """Keeps the followers of `queues` running while held; the `Listener` tells when
        any of them saw new events (one follower per queue, however many listeners)."""
        listener = Listener(self, [])
        try:
            for q in dict.fromkeys(queues):
                listener.add(q)
            yield listener
        finally:
            for f in listener.held:
                f.listeners -= 1

    async def _recheck(self, f: _Follower) -> None:
        """After a gap or an error: read the waited-on jobs in bounded batches (never one
        call per waiter at once) and wake those that finished or are gone."""
        ids = list(f.waiters)
        for start in range(0, len(ids), READ_LIMIT):
            chunk = ids[start : start + READ_LIMIT]
            for job_id, job in zip(chunk, await self._broker.get_many(chunk), strict=True):
                if job is None or job.state in TERMINAL_STATES:
                    f.wake(job_id)

    async def close(self) -> None:
        """Stops every follower; their waiters answer at once with their jobs as last read."""
        for f in self._followers.values():
            f.stopping = True
        pending = {f.task for f in self._followers.values() if f.task is not None}
        while pending:  # a cancel can be lost (see the module docstring): cancel again
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
        self._followers.clear()
        await self._reads.close()


class Listener:
    """`ticks()` before a read, then `changed(ticks, timeout_s)` if the read found nothing:
    a change between the two is never missed."""

    def __init__(self, hub: Waiters, queues: list[str]) -> None:
        self._hub = hub
        self.queues = queues
        #: the followers this listener keeps alive (released when `listening` ends)
        self.held: list[_Follower] = []

    def add(self, queue: str) -> None:
        """Follow one more queue (a stream over every queue that sees a new one appear)."""
        if queue in self.queues:
            return
        f = self._hub._follow(queue)
        f.listeners += 1
        self.held.append(f)
        self.queues.append(queue)

    def ticks(self) -> list[asyncio.Future[None]]:
        out = []
        for q in self.queues:
            f = self._hub._follow(q)
            if f.tick is None:
                f.tick = asyncio.get_running_loop().create_future()
            out.append(f.tick)
        return out

    async def changed(self, ticks: list[asyncio.Future[None]], timeout_s: float) -> bool:
        """True when one of the queues' logs moved on (or may have) since `ticks()`; with
        no queue to follow, nothing can change: False after the timeout."""
        if not ticks:
            await asyncio.sleep(timeout_s)
            return False
        done, _ = await asyncio.wait(ticks, timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
