"""SqliteBroker: the Broker protocol on one SQLite file, every transition one `BEGIN IMMEDIATE`
transaction (see transitions.py and operations.py), with the Redis broker's semantics.

Several processes on one host may share the file (WAL mode, `busy_timeout`): SQLite's write
lock serialises the transactions, so two workers never lease the same job. Writes go through
one connection and thread, reads through another, so listings never wait behind a write.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from conveyor import joblogs
from conveyor.brokers import shell
from conveyor.brokers.base import (
    AckItem,
    AuditReport,
    DeadScan,
    DeadSelector,
    DeathEvent,
    EventPage,
    FailItem,
    FetchBatch,
    HeartbeatReply,
    KeyInfo,
    LeaseRef,
    LogAppend,
    Page,
    ProgressItem,
    ReapResult,
    SeriesPoint,
    WorkerInfo,
    check_cursor_name,
    check_event_limit,
    check_progress,
    check_series_window,
    parse_dead_cursor,
    queue_not_empty,
    queue_not_found,
    series_hours,
)
from conveyor.brokers.sqlite import dlq, flow, logs, reads
from conveyor.brokers.sqlite import events as evlog
from conveyor.brokers.sqlite import operations as ops
from conveyor.brokers.sqlite import transitions as tx
from conveyor.brokers.sqlite.connection import Database, Tx, now_ms
from conveyor.brokers.sqlite.records import row_to_job
from conveyor.brokers.sqlite.registry import WorkerRegistry
from conveyor.brokers.sqlite.schema import migrate
from conveyor.brokers.sqlite.series import read_series, read_series_hours
from conveyor.brokers.sqlite.url import parse_sqlite_url
from conveyor.brokers.sqlite.wakeup import Wakeup
from conveyor.brokers.text import safe_json, safe_message, safe_name, safe_traceback
from conveyor.errors import (
    BrokerUnavailable,
    ValidationError,
)
from conveyor.flow import QueueLimits
from conveyor.ids import lease_nonce, split_job_id
from conveyor.jobs import EnqueueResult, Job, JobSpec, JobState, check_spec
from conveyor.queues import validate_queue_name

ENQUEUE_CHUNK = 1000
PROMOTE_LIMIT = 1000
#: Filtered listings look at this many candidates per call at most (as LIST_SCAN in Redis).
LIST_SCAN = 1000
#: `wait_for_work` checks `PRAGMA data_version` every POLL_MIN_S after a change, backing off
#: to POLL_MAX_S while the file is quiet: commits of other processes are seen within 50 ms.
POLL_MIN_S = 0.01
POLL_MAX_S = 0.05
SYNCHRONOUS = ("NORMAL", "FULL")


#: one enqueue transaction: the positions of its specs, and the transaction
EnqueueStep = tuple[list[int], Tx[list[EnqueueResult]]]


def enqueue_steps(specs: Sequence[JobSpec]) -> list[EnqueueStep]:
    """The transactions that store `specs`: one per queue and chunk of ENQUEUE_CHUNK jobs."""
    by_queue: dict[str, list[tuple[int, str, JobSpec]]] = defaultdict(list)
    for pos, spec in enumerate(specs):
        check_spec(spec)  # all or nothing: no transaction runs unless every spec is valid
        queue, uid = split_job_id(spec.id)
        by_queue[queue].append((pos, uid, spec))
    steps: list[EnqueueStep] = []
    for queue, items in by_queue.items():
        for start in range(0, len(items), ENQUEUE_CHUNK):
            chunk = items[start : start + ENQUEUE_CHUNK]
            pairs = [(uid, spec) for _, uid, spec in chunk]
            steps.append(([pos for pos, _, _ in chunk],
                          partial(ops.enqueue, queue=queue, specs=pairs)))
    return steps


class SqliteSyncEnqueuer:
    """The sync client's enqueue: the broker's own transactions on its writer thread, waited
    for by the calling thread (no hop through an event loop)."""

    def __init__(self, broker: SqliteBroker) -> None:
        self._broker = broker

    def enqueue(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        steps = enqueue_steps(specs)
        write = self._broker._writer.write_blocking
        return self._broker._enqueued(len(specs), steps, [write(fn) for _, fn in steps])

    def close(self) -> None:
        """Nothing of its own: the broker's connection stays the broker's."""


if TYPE_CHECKING:
    from conveyor.brokers.sqlite.schedules import SqliteScheduleStore
    from conveyor.brokers.sqlite.webhooks import SqliteWebhookStore

class SqliteBroker:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key_prefix: str = "cv",
        retention_s: float = 24 * 3600.0,
        dlq_retention_s: float = 30 * 24 * 3600.0,
        queue_retention_s: dict[str, float] | None = None,
        busy_timeout_ms: int = 5000,
        synchronous: str = "NORMAL",
        events_maxlen: int = evlog.DEFAULT_EVENTS_MAXLEN,
    ) -> None:
        """`key_prefix` is accepted for a uniform constructor and unused: the file is the
        namespace. `synchronous=NORMAL` (WAL) survives a process crash; a power cut may lose
        the last commits, as Redis' `appendfsync everysec` may. `FULL` syncs every commit."""
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValidationError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS)}",
                details={"field": "synchronous", "value": synchronous},
            )
        self.path = os.fspath(path)
        self.key_prefix = key_prefix
        self.retention_s = retention_s
        self.dlq_retention_s = dlq_retention_s
        self.queue_retention_s = dict(queue_retention_s or {})
        opts: dict[str, Any] = {"busy_timeout_ms": busy_timeout_ms,
                                "synchronous": synchronous.upper()}
        #: each queue's event log keeps about this many events (0: no events)
        self.events_maxlen = events_maxlen
        self._writer = Database(self.path, name="conveyor-sqlite-write",
                                events_maxlen=events_maxlen, **opts)
        self._reader = Database(self.path, name="conveyor-sqlite-read", **opts)
        self._registry = WorkerRegistry(self._writer, self._reader)
        self._wakeup = Wakeup()

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str = "cv", **kw: Any) -> SqliteBroker:
        path, options = parse_sqlite_url(url)
        if "synchronous" in options:
            kw.setdefault("synchronous", options["synchronous"])
        return cls(path, key_prefix=key_prefix, **kw)

    # --- lifecycle ------------------------------------------------------------------------
    async def connect(self) -> None:
        await self._writer.open()
        await self._writer.call(migrate)
        await self._reader.open()

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def ping(self) -> bool:
        try:
            row = await self._reader.call(lambda c: c.execute("SELECT 1").fetchone())
        except Exception:
            return False
        return bool(row == (1,))

    async def check_ready(self) -> None:
        if not await self.ping():
            raise BrokerUnavailable("the SQLite file cannot be read")

    async def now_ms(self) -> int:
        return now_ms()

    # --- producer -------------------------------------------------------------------------
    async def enqueue(self, specs: Sequence[JobSpec]) -> list[EnqueueResult]:
        steps = enqueue_steps(specs)
        return self._enqueued(len(specs), steps, [await self._writer.write(fn) for _, fn in steps])

    def sync_enqueuer(self) -> SqliteSyncEnqueuer:
        return SqliteSyncEnqueuer(self)

    def schedule_store(self) -> SqliteScheduleStore:
        """Where this broker keeps schedules (`schedules.store.schedule_store`)."""
        from conveyor.brokers.sqlite.schedules import SqliteScheduleStore

        return SqliteScheduleStore(self)

    def webhook_store(self) -> SqliteWebhookStore:
        """Where this broker keeps webhook subscriptions (`webhooks.store.webhook_store`)."""
        from conveyor.brokers.sqlite.webhooks import SqliteWebhookStore

        return SqliteWebhookStore.for_broker(self)

    def _enqueued(
        self, count: int, steps: Sequence[EnqueueStep], replies: Sequence[list[EnqueueResult]],
    ) -> list[EnqueueResult]:
        """The results in the order of the specs; wakes this process's waiters on new work."""
        out: list[EnqueueResult | None] = [None] * count
        for (positions, _), results in zip(steps, replies, strict=True):
            for pos, res in zip(positions, results, strict=True):
                out[pos] = res
        if any(r is not None and r.created for r in out):
            self._wakeup.notify()
        return [r for r in out if r is not None]

    # --- worker ---------------------------------------------------------------------------
    async def fetch(self, queue: str, count: int, worker_id: str, lease_ms: int) -> FetchBatch:
        shell.queue_name(queue)
        nonce, worker = lease_nonce(), safe_name(worker_id)
        now, due, promoted, rows = await self._writer.write(
            lambda c: tx.fetch(c, queue, max(count, 0), worker, lease_ms, PROMOTE_LIMIT, nonce)
        )
        if promoted:
            self._wakeup.notify()
        deliveries = [
            shell.delivery(queue, uid, token=token, type=jtype, payload=payload,
                           attempts=attempts, max_attempts=int(max_att), timeout_ms=timeout,
                           due_ms=run_at if isinstance(run_at, int) else None, leased_ms=now,
                           trace=trace)
            for uid, token, jtype, payload, attempts, max_att, timeout, run_at, trace in rows
        ]
        return FetchBatch(deliveries, now, due)

    async def wait_for_work(self, queues: Sequence[str], timeout_s: float) -> bool:
        """Level-triggered: True as soon as one of the (unpaused) queues holds a QUEUED job or
        a SCHEDULED one becomes due (never before its due time: the fetch would find nothing
        and the worker would wait again, in a loop). Writes of this process wake the wait at
        once; other processes' commits are noticed by polling `PRAGMA data_version` (a read of
        the WAL index, no query) every 10-50 ms, and only a change runs the queue check."""
        names = shell.queue_names(queues)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        seen = -1
        interval = POLL_MIN_S
        due: int | None = None  # when work can start, as of the last change seen
        while True:
            version, probed = await self._reader.read(partial(_probe, names=names, seen=seen))
            if version != seen:
                due = probed
            now = now_ms()
            if due is not None and due <= now:
                return True
            interval = POLL_MIN_S if version != seen else min(interval * 1.5, POLL_MAX_S)
            seen = version
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if due is not None:  # a SCHEDULED job: wake at its due time, not later
                remaining = min(remaining, (due - now) / 1000)
            await self._wakeup.wait(min(interval, remaining))

    async def heartbeat(self, leases: Sequence[LeaseRef], lease_ms: int) -> HeartbeatReply:
        if not leases:
            return HeartbeatReply()
        lost, cancels = await self._writer.write(lambda c: tx.heartbeat(c, leases, lease_ms))
        return HeartbeatReply([leases[pos].job_id for pos in lost],
                              {leases[pos].job_id: actor for pos, actor in cancels.items()})

    async def cancel_running(self, leases: Sequence[LeaseRef]) -> list[bool]:
        if not leases:
            return []
        return await self._writer.write(lambda c: tx.cancel_running(c, leases))

    async def ack(self, items: Sequence[AckItem]) -> list[bool]:
        if not items:
            return []
        safe = [replace(a, result_json=safe_json(a.result_json)) for a in items]
        return await self._writer.write(lambda c: tx.ack(c, safe))

    async def fail(self, items: Sequence[FailItem]) -> list[JobState | None]:
        if not items:
            return []
        safe = [replace(f, error_code=safe_name(f.error_code), message=safe_message(f.message),
                        traceback=safe_traceback(f.traceback)) for f in items]
        out = await self._writer.write(lambda c: tx.fail(c, safe))
        if any(s in (JobState.QUEUED, JobState.SCHEDULED) for s in out):
            self._wakeup.notify()
        return out

    async def append_logs(self, items: Sequence[LogAppend]) -> list[bool]:
        if not items:
            return []
        rows = [(*split_job_id(i.job_id), i.token, list(i.lines)) for i in items]
        return await self._writer.write(
            lambda c: logs.append(c, rows, joblogs.MAX_LINES, joblogs.MAX_BYTES))

    async def job_logs(self, job_id: str) -> list[str]:
        queue, uid = split_job_id(job_id)
        return await self._reader.read(lambda c: logs.read(c, queue, uid))

    async def release(self, leases: Sequence[LeaseRef]) -> list[bool]:
        if not leases:
            return []
        out = await self._writer.write(lambda c: tx.release(c, leases))
        if any(out):
            self._wakeup.notify()
        return out

    async def progress(self, items: Sequence[ProgressItem]) -> list[bool]:
        if not items:
            return []
        rows = [(*split_job_id(p.job_id), p.token, *check_progress(p.value, p.message))
                for p in items]
        rows = [(q, u, t, v, safe_message(m)) for q, u, t, v, m in rows]
        return await self._writer.write(lambda c: tx.progress(c, rows))

    async def release_held(self, leases: Sequence[LeaseRef], hold_ms: int) -> list[bool]:
        if not leases:
            return []
        hold = max(int(hold_ms), 0)
        out = await self._writer.write(lambda c: tx.release(c, leases, hold))
        if any(out):
            self._wakeup.notify()
        return out

    async def promote_due(self, queue: str, limit: int = 1000) -> int:
        shell.queue_name(queue)
        n = await self._writer.write(lambda c: tx.promote(c, queue, now_ms(), limit))
        if n:
            self._wakeup.notify()
        return n

    async def reap_expired(self, queue: str, limit: int = 1000) -> ReapResult:
        shell.queue_name(queue)
        requeued, dead, cancelled = await self._writer.write(lambda c: tx.reap(c, queue, limit))
        if requeued:
            self._wakeup.notify()
        return ReapResult(requeued=requeued, dead=dead, cancelled=cancelled)

    async def expire_finished(self, queue: str, limit: int = 1000) -> int:
        keep_ms = shell.retention_ms(shell.queue_name(queue), self.retention_s,
                                     self.queue_retention_s)
        dlq_ms = int(self.dlq_retention_s * 1000)
        return await self._writer.write(lambda c: ops.expire(c, queue, keep_ms, dlq_ms, limit))

    # --- operator -------------------------------------------------------------------------
    async def get(self, job_id: str) -> Job:
        queue, uid = split_job_id(job_id)
        row = await self._reader.read(lambda c: ops.select_job(c, queue, uid))
        if row is None:
            raise shell.not_found(job_id)
        return row_to_job(row)

    async def get_many(self, job_ids: Sequence[str]) -> list[Job | None]:
        where = [split_job_id(j) for j in job_ids]
        rows = await self._reader.read(lambda c: [ops.select_job(c, q, u) for q, u in where])
        # a bulk read, like a listing: a corrupt record reads as far as it can (corrupt_job)
        return [None if row is None else row_to_job(row, strict=False) for row in rows]

    async def cancel(self, job_id: str, actor: str = "manual") -> Job:
        queue, uid = split_job_id(job_id)
        res, row = await self._writer.write(
            lambda c: ops.cancel(c, queue, uid, safe_name(actor))
        )
        shell.cancel_outcome(job_id, res)
        return row_to_job(row)

    async def retry(self, job_id: str, actor: str = "manual") -> Job:
        queue, uid = split_job_id(job_id)

        def run(c: Any) -> tuple[str, Any]:
            ((_, res),) = ops.retry(c, queue, [uid], safe_name(actor))
            return res, ops.select_job(c, queue, uid)

        res, row = await self._writer.write(run)
        shell.retry_outcome(job_id, res)
        self._wakeup.notify()
        return row_to_job(row)

    async def list_jobs(
        self, *, queue: str | None = None, state: JobState | None = None,
        type: str | None = None, limit: int = 50, cursor: str | None = None,
    ) -> Page:
        """Newest first by uid (creation time), across queues by merging each queue's
        (queue, uid) index. Filtered listings look at LIST_SCAN candidates per call at most,
        so a page may be short while `next_cursor` is set."""
        shell.check_page(limit)
        shell.uid_cursor(cursor)
        names = [shell.queue_name(queue)] if queue is not None else await self.queues()
        filtered = state is not None or type is not None
        scan = max(limit, LIST_SCAN) if filtered else limit + 1

        rows, nxt = await self._reader.read(
            lambda c: reads.list_page(c, names, state, type, limit, cursor, scan)
        )
        return Page(items=[row_to_job(r, strict=False) for r in rows], next_cursor=nxt)

    async def dlq_list(self, queue: str, limit: int = 50, cursor: str | None = None) -> Page:
        """The DLQ newest first by finish time; the cursor is an offset (as in Redis)."""
        shell.queue_name(queue)
        shell.check_page(limit)
        offset = shell.offset_cursor(cursor)
        rows = await self._reader.read(lambda c: reads.dead_page(c, queue, limit, offset))
        nxt = str(offset + limit) if len(rows) == limit else None
        return Page(items=[row_to_job(r, strict=False) for r in rows], next_cursor=nxt)

    async def dlq_scan(
        self, queue: str, selector: DeadSelector | None = None, *, limit: int = 100,
        cursor: str | None = None, scan: int = 1000,
    ) -> DeadScan:
        shell.check_dead_scan(queue, limit, scan)
        pos = None if cursor is None else parse_dead_cursor(cursor)
        uids, last, done = await self._reader.read(
            lambda c: dlq.scan(c, queue, selector, limit, pos, max(scan, limit))
        )
        return DeadScan(
            ids=[f"{queue}:{u}" for u in uids],
            cursor=None if last is None else f"{last[0]}:{last[1]}",
            done=done,
        )

    async def dlq_redrive(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000,
        actor: str = "dlq.redrive", *, selector: DeadSelector | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        uids = shell.uids_in(shell.queue_name(queue), job_ids)
        if uids == []:
            return []
        res = await self._writer.write(
            lambda c: dlq.redrive(c, queue, uids, limit, safe_name(actor), selector, dry_run)
        )
        if res and not dry_run:
            self._wakeup.notify()
        return [f"{queue}:{u}" for u in res]

    async def dlq_move(
        self, queue: str, job_ids: Sequence[str], target_queue: str, actor: str,
        *, selector: DeadSelector | None = None,
    ) -> list[tuple[str, str]]:
        shell.check_move(queue, target_queue)
        uids = shell.uids_in(queue, job_ids) or []
        if not uids:
            return []
        pairs = await self._writer.write(
            lambda c: dlq.move(c, queue, uids, target_queue, safe_name(actor), selector)
        )
        if pairs:
            self._wakeup.notify()
        return [(f"{queue}:{old}", f"{target_queue}:{new}") for old, new in pairs]

    async def dlq_purge(
        self, queue: str, job_ids: Sequence[str] | None = None, limit: int = 1000,
        *, selector: DeadSelector | None = None, dry_run: bool = False,
    ) -> list[str]:
        uids = shell.uids_in(shell.queue_name(queue), job_ids)
        if uids == []:
            return []
        gone = await self._writer.write(
            lambda c: dlq.purge(c, queue, uids, limit, selector, dry_run)
        )
        return [f"{queue}:{u}" for u in gone]

    async def claim_deaths(self, queue: str, limit: int, lease_ms: int) -> list[DeathEvent]:
        shell.queue_name(queue)
        rows = await self._writer.write(lambda c: dlq.claim_deaths(c, queue, limit, lease_ms))
        return [DeathEvent(f"{queue}:{uid}", jtype, n) for uid, n, jtype in rows]

    async def ack_deaths(self, queue: str, events: Sequence[DeathEvent]) -> int:
        shell.queue_name(queue)
        keys = [(shell.uid_in(queue, e.job_id), e.redrives) for e in events]
        if not keys:
            return 0
        return await self._writer.write(lambda c: dlq.ack_deaths(c, queue, keys))

    async def pause(self, queue: str) -> None:
        validate_queue_name(queue)
        await self._writer.write(
            lambda c: c.execute("INSERT OR IGNORE INTO paused (name) VALUES (?)", (queue,))
        )

    async def resume(self, queue: str) -> None:
        validate_queue_name(queue)
        await self._writer.write(lambda c: c.execute("DELETE FROM paused WHERE name = ?", (queue,)))
        self._wakeup.notify()

    async def is_paused(self, queue: str) -> bool:
        row = await self._reader.read(
            lambda c: c.execute("SELECT 1 FROM paused WHERE name = ?", (queue,)).fetchone()
        )
        return row is not None

    async def paused_queues(self, queues: Sequence[str]) -> set[str]:
        rows = await self._reader.read(lambda c: c.execute("SELECT name FROM paused").fetchall())
        return {str(r[0]) for r in rows} & set(queues)

    async def forget_queue(self, queue: str) -> None:
        validate_queue_name(queue)
        res, counts = await self._writer.write(lambda c: ops.forget_queue(c, queue))
        if res == "not_found":
            raise queue_not_found(queue)
        if res != "ok":
            raise queue_not_empty(queue, counts)

    async def queues(self) -> list[str]:
        """Every queue that received a job and was not forgotten since (as the Redis
        registry)."""
        rows = await self._reader.read(
            lambda c: c.execute("SELECT name FROM queues ORDER BY name").fetchall()
        )
        return [str(r[0]) for r in rows]

    async def stats(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        names = list(queues) if queues is not None else await self.queues()
        return await self._reader.read(lambda c: reads.stats(c, names))

    async def series(
        self, queue: str, minutes: int, type: str | None = None, step_s: int | None = None
    ) -> list[SeriesPoint]:
        validate_queue_name(queue)
        step = check_series_window(minutes, type, step_s)
        last = now_ms() // 60_000
        if step == 3600:
            hours = series_hours(last, minutes)
            return await self._reader.read(lambda c: read_series_hours(c, queue, hours, type))
        return await self._reader.read(
            lambda c: read_series(c, queue, last - minutes + 1, last, type))

    async def ready_ages(self, queues: Sequence[str]) -> dict[str, int]:
        names = list(queues)
        return await self._reader.read(lambda c: reads.ready_ages(c, names, now_ms()))

    async def limited_counts(self, queues: Sequence[str]) -> dict[str, int]:
        names = list(queues)
        return await self._reader.read(lambda c: flow.limited_counts(c, names))

    # --- flow control ---------------------------------------------------------------------
    async def set_limits(self, queue: str, limits: QueueLimits) -> QueueLimits:
        validate_queue_name(queue)
        if limits.empty:
            await self.delete_limits(queue)
            return QueueLimits()
        await self._writer.write(lambda c: flow.set_limits(c, queue, limits))
        self._wakeup.notify()
        return limits

    async def get_limits(self, queue: str) -> QueueLimits | None:
        validate_queue_name(queue)
        return await self._reader.read(lambda c: flow.get_limits(c, queue))

    async def delete_limits(self, queue: str) -> bool:
        validate_queue_name(queue)

        def delete(c: Any) -> bool:
            had = flow.get_limits(c, queue) is not None
            flow.set_limits(c, queue, None)
            return had

        had = await self._writer.write(delete)
        self._wakeup.notify()
        return had

    async def held_counts(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        names = list(queues)
        return await self._reader.read(lambda c: flow.held_counts(c, names))

    async def limit_keys(self, queue: str, limit: int = 50) -> list[KeyInfo]:
        validate_queue_name(queue)
        return await self._reader.read(lambda c: flow.keys(c, queue, limit, now_ms()))

    async def audit(self, queue: str) -> AuditReport:
        """Invariant 1 for one queue (see reads.audit). Scans the table: for quiet moments."""
        return await self._reader.read(lambda c: reads.audit(c, queue))

    # --- event log (issue 17) --------------------------------------------------------------
    async def read_events(self, queue: str, after: str = "0", limit: int = 100) -> EventPage:
        validate_queue_name(queue)
        check_event_limit(limit)
        evlog.row_id(after)
        return await self._reader.read(lambda c: evlog.read(c, queue, after, limit))

    async def wait_events(self, queue: str, after: str, timeout_s: float) -> bool:
        """Polls the log (a read of one index entry) every 10-50 ms: SQLite has no way to
        block on another process's commit."""
        validate_queue_name(queue)
        start = evlog.row_id(after)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(timeout_s, 0.0), 5.0)
        interval = POLL_MIN_S
        while True:
            if await self._reader.read(lambda c: evlog.has_after(c, queue, start)):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 1.5, POLL_MAX_S)

    async def events_tail(self, queue: str) -> str:
        validate_queue_name(queue)
        return await self._reader.read(lambda c: evlog.tail(c, queue))

    async def get_with_cursor(self, job_id: str) -> tuple[Job, str]:
        queue, uid = split_job_id(job_id)
        row, cursor = await self._reader.read(
            lambda c: (ops.select_job(c, queue, uid), evlog.tail(c, queue)))
        if row is None:
            raise shell.not_found(job_id)
        return row_to_job(row), cursor

    async def load_cursor(self, queue: str, name: str) -> str | None:
        validate_queue_name(queue)
        check_cursor_name(name)
        row = await self._reader.read(lambda c: c.execute(
            "SELECT cursor FROM event_cursors WHERE queue = ? AND name = ?", (queue, name),
        ).fetchone())
        if row is None or not isinstance(row[0], str) or not row[0].isdigit():
            return None  # never saved, or a damaged record: as if never saved
        return row[0]

    async def save_cursor(self, queue: str, name: str, cursor: str) -> None:
        validate_queue_name(queue)
        check_cursor_name(name)
        evlog.row_id(cursor)
        await self._writer.write(lambda c: c.execute(
            "INSERT INTO event_cursors (queue, name, cursor) VALUES (?, ?, ?)"
            " ON CONFLICT (queue, name) DO UPDATE SET cursor = excluded.cursor",
            (queue, name, cursor)))

    # --- worker registry ------------------------------------------------------------------
    async def register_worker(self, info: WorkerInfo, ttl_s: float) -> None:
        await self._registry.register(info, ttl_s)

    async def deregister_worker(self, worker_id: str) -> None:
        await self._registry.deregister(worker_id)

    async def workers(self) -> list[WorkerInfo]:
        return await self._registry.live()


def _probe(conn: Any, names: list[str], seen: int) -> tuple[int, int | None]:
    """The data version, and when work can start (`reads.work_due_ms`) if it changed."""
    version = reads.data_version(conn)
    if version == seen:
        return version, None
    return version, reads.work_due_ms(conn, names, now_ms())

