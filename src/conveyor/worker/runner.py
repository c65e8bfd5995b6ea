"""The worker: a fetch loop filling N concurrent slots, plus the helpers that run beside it
(completions batcher, lease keeper, maintenance, registration) and a graceful stop.

The loop never sleeps to poll: with free slots and no work it blocks in the broker's
`wait_for_work` until woken or the next scheduled job is due (by the broker's clock); with no
free slot it waits for one to free.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor import tracing
from conveyor.brokers.base import AckItem, Broker, FailItem, LeaseRef, LeasingWait, new_ticket
from conveyor.errors import BrokerMisconfigured, UnknownJobType
from conveyor.handlers import Registry, default_registry
from conveyor.jobs import Delivery, JobState
from conveyor.logging import get_logger, job_context
from conveyor.settings import Settings, get_settings
from conveyor.worker.backoff import TRANSIENT_ERRORS, BrokerBackoff
from conveyor.worker.completions import DROPPED, Completions
from conveyor.worker.executor import Executor, Hold
from conveyor.worker.lease_keeper import LeaseKeeper
from conveyor.worker.log_shipper import LogShipper
from conveyor.worker.loop_watch import JOB_TASK_PREFIX, LoopWatchdog
from conveyor.worker.maintenance import Maintenance, MaintenanceHook
from conveyor.worker.metrics import JobSeries, WorkerMetrics, call_timer
from conveyor.worker.registration import Registration

log = get_logger("conveyor.worker")

#: Shortest local wait before fetching again.
MIN_WAIT_S = 0.001
#: How long one blocking wait for wake-ups lasts on the broker before it is renewed.
WAKER_BLOCK_S = 5.0
#: How long cancelled jobs get to unwind, and releases to reach the broker, at shutdown.
CANCEL_WAIT_S = 2.0
RELEASE_DEADLINE_S = 5.0
#: while the broker is unsafe (e.g. an evicting Redis), how often fetching is tried again
MISCONFIGURED_RETRY_S = 1.0


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _consume_result(task: asyncio.Task[bool]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


@dataclass(slots=True, eq=False)
class _Slot:
    delivery: Delivery
    task: asyncio.Task[None] | None = None
    #: lease lost or released: this run's outcome must never be sent
    dropped: bool = False
    #: the attempt's CONSUMER span (tracing on), for the events that come from outside
    span: Any = None
    #: who cancelled the running job (learnt from a heartbeat): the handler is stopped and
    #: the job ends CANCELLED (`Broker.cancel_running`) instead of sending its outcome
    cancel_by: str | None = None
    #: what a sync handler reads as `ctx.cancelled`
    cancel_event: threading.Event = field(default_factory=threading.Event)
    #: the job's task was cancelled to stop an async (or process) handler
    task_cancelled: bool = False
    #: what the worker's metrics record of its (queue, type) (metrics on)
    series: JobSeries | None = None


@dataclass(slots=True, eq=False)
class _LeaseWait:
    """One outstanding `LeasingWait.wait_and_fetch` call: its ticket, and the slots it may
    fill when it answers (reserved meanwhile). `revoked`: None (not revoked), True (revoked
    before it leased: it leases nothing), False (revoked, but it may have leased first)."""

    ticket: str
    count: int
    revoked: bool | None = None


class Worker:
    def __init__(
        self,
        broker: Broker,
        *,
        queues: Sequence[str],
        concurrency: int,
        registry: Registry = default_registry,
        settings: Settings | None = None,
        worker_id: str | None = None,
        maintenance_hooks: Sequence[MaintenanceHook] = (),
        metrics: WorkerMetrics | None = None,
    ) -> None:
        if not queues:
            raise ValueError("a worker needs at least one queue")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.broker = broker
        self.queues = list(queues)
        self.concurrency = concurrency
        self.settings = settings or get_settings()
        self.worker_id = worker_id or new_worker_id()
        self._hooks = list(maintenance_hooks)
        self._registry = registry
        self._lease_ms = int(self.settings.lease_s * 1000)
        self._in_flight: dict[str, _Slot] = {}
        self._slot_freed = asyncio.Event()
        self._waker: asyncio.Task[bool] | None = None
        #: the leasing waker's call (`LeasingWait`), while it is outstanding: it may lease
        #: `count` jobs the moment work arrives, so other fetches leave those slots free
        self._lease_wait: _LeaseWait | None = None
        #: one queue on a broker that can wait and lease in one round trip
        self._leasing_wait = len(set(self.queues)) == 1 and isinstance(broker, LeasingWait)
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()
        self._stopping = False
        self._ignored_cancel = 0
        #: the lines handlers write through `ctx.logger`, batched to the broker
        self.logs = LogShipper(broker)
        self._executor = Executor(
            registry, worker_id=self.worker_id, concurrency=concurrency,
            settings=self.settings, on_capacity=self._slot_freed.set, logs=self.logs,
            broker=broker,
        )
        self.metrics = metrics
        #: (job id, token) -> the series (queue, type) of outcomes not answered yet
        self._labels: dict[tuple[str, str], JobSeries] = {}
        self.completions = Completions(
            broker, on_answer=self._answered if metrics is not None else None)
        if metrics is not None:
            self.completions.call_timer = metrics.call
            metrics.watch_slots(lambda: len(self._in_flight), lambda: max(self.free_slots, 0))
            metrics.describe_worker(self.worker_id, self.queues)
        block_s = self.settings.loop_block_warn_s
        self.loop_watchdog = LoopWatchdog(block_s, self._running_jobs) if block_s else None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def free_slots(self) -> int:
        """Slots a new job could start in: a sync handler's thread that outlived its job
        (timeout, cancel) still holds one, so no job is leased that could not start."""
        return self.concurrency - len(self._in_flight) - self._executor.stray_threads

    @property
    def _reserved(self) -> int:
        """Slots promised to the leasing waker's outstanding call (none once revoked)."""
        wait = self._lease_wait
        return 0 if wait is None or wait.revoked is True else wait.count

    @property
    def unfinished_handlers(self) -> int:
        """Handlers still running after the worker stopped: sync threads that never returned
        and tasks that ignored cancellation. Only a process exit ends them."""
        return self._executor.stray_threads + self._ignored_cancel

    def _running_jobs(self) -> list[tuple[str, str]]:  # called from the watchdog thread
        return [(s.delivery.job_id, s.delivery.type) for s in list(self._in_flight.values())]

    @property
    def stopping(self) -> bool:
        return self._stopping

    def in_flight_ids(self) -> list[str]:
        return list(self._in_flight)

    def stop(self) -> None:
        """Stop fetching now and drain; a second call skips the grace period."""
        if not self._stopping:
            self._stopping = True
            log.info("worker_stopping", extra={"in_flight": len(self._in_flight)})
            self._stop.set()
            self._slot_freed.set()
        elif not self._hurry.is_set():
            log.warning("second_stop_releasing_jobs")
            self._hurry.set()

    async def run(self) -> None:
        executor, completions = self._executor, self.completions
        keeper = LeaseKeeper(
            self.broker,
            interval_s=self.settings.heartbeat_s,
            lease_ms=self._lease_ms,
            leases=self._leases,
            on_lost=self._on_lease_lost,
            metrics=self.metrics,
            on_cancel=self._on_cancel_requested,
        )
        maintenance = Maintenance(
            self.broker, self.queues, interval_s=self.settings.reap_interval_s,
            hooks=self._hooks, metrics=self.metrics,
        )
        registration = Registration(
            self.broker,
            worker_id=self.worker_id,
            queues=self.queues,
            concurrency=self.concurrency,
            ttl_s=self.settings.worker_ttl_s,
            jobs=self.in_flight_ids,
            metrics_url=self.metrics.url if self.metrics is not None else None,
        )
        await executor.start()
        completions.start()
        await registration.start()
        await self._sync_limits()
        helpers = [
            asyncio.create_task(keeper.run(), name="conveyor-lease-keeper"),
            asyncio.create_task(maintenance.run(), name="conveyor-maintenance"),
            asyncio.create_task(registration.run(), name="conveyor-registration"),
            asyncio.create_task(self.logs.run(), name="conveyor-log-shipper"),
        ]
        if self.loop_watchdog is not None:
            helpers.append(asyncio.create_task(self.loop_watchdog.run(), name="conveyor-loop"))
        log.info(
            "worker_started",
            extra={"worker_id": self.worker_id, "queues": self.queues,
                   "concurrency": self.concurrency, "job_types": self._registry.types()},
        )
        try:
            await self._fetch_loop()
        except asyncio.CancelledError:
            self._hurry.set()  # cancelled from outside: no grace period, release at once
            raise
        finally:
            self._stopping = True
            await self._drain()
            for task in helpers:  # the lease keeper ran through the grace period
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await completions.close()
            await registration.deregister()
            executor.shutdown()
            log.info(
                "worker_stopped",
                extra={"acked": completions.acked, "failed": completions.failed,
                       "rejected": completions.rejected},
            )

    # --- fetching ---------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        backoff = BrokerBackoff()
        stop_wait = asyncio.create_task(self._stop.wait())
        misconfigured = False
        try:
            while not self._stopping:
                try:
                    free = self.free_slots - self._reserved
                    if free <= 0 and not self._reserved:
                        await self._wait_for_slot()
                        continue
                    # free slots all promised to a leasing waker: fetch 0 still promotes due
                    # jobs, and its wake-up makes the waker lease them
                    fetched, wait_s = await self._fetch(max(free, 0))
                    if misconfigured:
                        misconfigured = False
                        log.warning("broker_configuration_fixed")
                    if (fetched < free or free <= 0) and not self._stopping:
                        await self._wait_for_work(wait_s, stop_wait)
                except BrokerMisconfigured as exc:  # jobs there could be lost: take none
                    # a one-hop wait sent before the broker turned unsafe would still lease
                    # the next job that arrives: turn it off before saying we stopped
                    await self._end_lease_wait(0)
                    if not misconfigured:
                        misconfigured = True
                        log.error("broker_misconfigured_not_fetching",
                                  extra={"error": exc.message, "details": exc.details,
                                         "in_flight": len(self._in_flight)})
                    await asyncio.wait([stop_wait], timeout=MISCONFIGURED_RETRY_S)
                    continue
                except TRANSIENT_ERRORS as exc:
                    delay = backoff.next_delay_s()
                    log.warning(
                        "broker_unavailable_backing_off",
                        extra={"error": repr(exc), "retry_in_s": round(delay, 3),
                               "in_flight": len(self._in_flight)},
                    )
                    await asyncio.wait([stop_wait], timeout=delay)
                    continue
                except Exception:
                    delay = backoff.next_delay_s()
                    log.exception("fetch_loop_error", extra={"retry_in_s": round(delay, 3)})
                    await asyncio.wait([stop_wait], timeout=delay)
                    continue
                if backoff.failures:
                    log.info("broker_reachable_again")
                    backoff.reset()

        finally:
            stop_wait.cancel()
            await self._end_lease_wait(CANCEL_WAIT_S)  # nothing leased behind our back
            self._cancel_waker()

    async def _fetch(self, free: int) -> tuple[int, float]:
        """Lease up to `free` jobs, queues in strict priority order. Returns how many, and
        how long to wait for work if that was not enough (until the next due job)."""
        fetched = 0
        wait_s = self.settings.reap_interval_s
        for queue in self.queues:
            with call_timer(self.metrics, "fetch"):
                batch = await self.broker.fetch(
                    queue, free - fetched, self.worker_id, self._lease_ms
                )
            for delivery in batch.deliveries:
                self._spawn(delivery)
            fetched += len(batch.deliveries)
            # A due time already past means fetch could not promote it (the queue is
            # paused): waiting for it would spin, so only future due times count.
            if batch.next_due_ms is not None and batch.next_due_ms > batch.now_ms:
                wait_s = min(wait_s, (batch.next_due_ms - batch.now_ms) / 1000)
            if fetched >= free or self._stopping:
                break
        return fetched, max(wait_s, MIN_WAIT_S)

    async def _wait_for_work(self, timeout_s: float, stop_wait: asyncio.Task[bool]) -> None:
        """Wait until woken by the broker, or `timeout_s` (the next due job) passes.

        The blocking call (the waker) outlives this wait: when the local timer fires first
        it keeps blocking and serves the next wait, so a due-time wake-up costs no
        reconnect. The timer is local because Redis rounds BLPOP timeouts up to its cron
        tick (up to 100 ms late); the delay itself comes from the broker's clock.
        """
        if self._waker is None:
            if self._leasing_wait:
                self._lease_wait = _LeaseWait(new_ticket(), self.free_slots)
                self._waker = asyncio.create_task(self._wait_and_lease(self._lease_wait))
            else:
                self._waker = asyncio.create_task(
                    self.broker.wait_for_work(self.queues, WAKER_BLOCK_S))
        await asyncio.wait(
            [self._waker, stop_wait], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if self._waker is not None and self._waker.done():
            waker, self._waker = self._waker, None
            waker.result()  # re-raise a broker error into the loop's backoff

    async def _wait_and_lease(self, wait: _LeaseWait) -> bool:
        """The waker of a single-queue worker on a `LeasingWait` broker: the blocking wait
        and the fetch in one round trip, so a job that arrives is leased at once (one hop,
        not wake-then-lease). `wait.count` slots stay reserved until it answers; its leases
        are started here, or handed back if the worker is stopping. Returns False: any
        wake-up left over was passed on by the fetch itself."""
        assert isinstance(self.broker, LeasingWait)
        try:
            batch = await self.broker.wait_and_fetch(
                self.queues[0], wait.count, self.worker_id, self._lease_ms, WAKER_BLOCK_S,
                wait.ticket)
        finally:
            if self._lease_wait is wait:
                self._lease_wait = None
        if self._stopping:
            await self._release([_Slot(d) for d in batch.deliveries])
        else:
            for delivery in batch.deliveries:
                self._spawn(delivery)
        return False

    async def _end_lease_wait(self, grace_s: float) -> None:
        """Make the leasing waker's outstanding call lease nothing from now on (stopping,
        or the broker turned unsafe): its fetch may already wait on the server behind the
        BLPOP, where a cancel cannot reach it. If it had not leased, the call is dropped;
        if it may have (its reply is on its way), it is given `grace_s` to answer, and
        `_wait_and_lease` starts or releases what it leased."""
        wait, waker = self._lease_wait, self._waker
        if wait is None or waker is None or waker.done():
            return
        assert isinstance(self.broker, LeasingWait)
        if wait.revoked is None:
            try:
                wait.revoked = await self.broker.revoke_wait(self.queues[0], wait.ticket)
            except TRANSIENT_ERRORS as exc:
                log.warning("wait_revoke_failed",
                            extra={"error": repr(exc),
                                   "detail": "a job it leased comes back when its lease expires"})
                return
        if wait.revoked:
            self._cancel_waker()
        elif grace_s > 0:
            await asyncio.wait([waker], timeout=grace_s)

    async def _wait_for_slot(self) -> None:
        """All slots busy: wait for one. A wake-up taken meanwhile is passed on, so an idle
        worker elsewhere picks up the work this one cannot take."""
        self._slot_freed.clear()
        freed = asyncio.create_task(self._slot_freed.wait())
        waits: list[asyncio.Future[Any]] = [freed]
        if self._waker is not None:
            waits.append(self._waker)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            freed.cancel()
        if self._waker is not None and self._waker.done():
            waker, self._waker = self._waker, None
            if waker.result() and self.free_slots <= 0:
                for queue in self.queues:  # count 0: leases nothing, re-wakes if work is left
                    await self.broker.fetch(queue, 0, self.worker_id, self._lease_ms)

    def _cancel_waker(self) -> None:
        waker, self._waker = self._waker, None
        if waker is not None and not waker.done():
            waker.cancel()
            # On Python 3.11 redis-py's internal wait_for can swallow the cancel, and the
            # blocking call then runs to its own timeout; nobody waits for it.
            waker.add_done_callback(_consume_result)

    # --- running jobs -----------------------------------------------------------------------

    def _spawn(self, delivery: Delivery) -> None:
        old = self._in_flight.get(delivery.job_id)
        if old is not None:  # a fresh delivery means our older one lost its lease
            self._drop(old)
        slot = _Slot(delivery)
        self._in_flight[delivery.job_id] = slot
        if self.metrics is not None:
            slot.series = self.metrics.job(delivery.queue, delivery.type)
            if delivery.due_ms is not None and delivery.leased_ms is not None:
                slot.series.waited(delivery.leased_ms - delivery.due_ms)
        slot.task = asyncio.get_running_loop().create_task(
            self._run_job(slot), name=JOB_TASK_PREFIX + delivery.job_id
        )

    async def _run_job(self, slot: _Slot) -> None:
        d = slot.delivery
        self.logs.start(d)
        try:
            started = time.perf_counter()
            try:
                if tracing.enabled():
                    outcome = await self._traced(slot)
                else:
                    outcome = await self._executor.execute(d, slot.cancel_event)
            except asyncio.CancelledError:
                if slot.dropped or not slot.task_cancelled:
                    raise  # lease lost, shutdown, or cancelled from outside
                outcome = None  # stopped because an operator cancelled the job
            if slot.task_cancelled and (task := asyncio.current_task()) is not None:
                task.uncancel()  # our own request, handled here (raised or swallowed)
            if slot.series is not None:
                slot.series.duration.observe(time.perf_counter() - started)
            if not slot.dropped:
                await self.logs.close(slot.delivery)  # before the outcome ends the lease
            if slot.dropped:
                pass
            elif slot.cancel_by is not None:  # whatever the handler returned: CANCELLED
                await self._end_cancelled([slot])
            elif isinstance(outcome, Hold):
                await self._hold(outcome)
            elif outcome is not None:
                if slot.series is not None:
                    self._labels[d.job_id, d.token] = slot.series
                self.completions.submit(outcome)
        except Exception:  # an executor bug: the lease expires and the job is redelivered
            log.exception("job_runner_error", extra={"failed_job_id": slot.delivery.job_id})
        finally:
            self.logs.discard(slot.delivery)
            job_id = slot.delivery.job_id
            if self._in_flight.get(job_id) is slot:
                del self._in_flight[job_id]
            self._slot_freed.set()

    async def _traced(self, slot: _Slot) -> AckItem | FailItem | Hold:
        """Run the attempt in its CONSUMER span; a failure is an event and the status."""
        d = slot.delivery
        attempt = tracing.Attempt(d.queue, d.type, d.job_id, d.attempts, d.trace)
        with attempt as span:
            slot.span = span
            outcome = await self._executor.execute(d, slot.cancel_event, attempt.log_fields)
            if isinstance(outcome, FailItem):
                retry = outcome.retry_delay_ms is not None and d.attempts < d.max_attempts
                tracing.failed(span, outcome.error_code, outcome.message,
                               retry_in_ms=outcome.retry_delay_ms if retry else None)
            return outcome

    async def _sync_limits(self) -> None:
        """Limits declared in code (`Registry.queue_limits`) for the queues this worker
        serves, set on the broker at start."""
        for queue, limits in self._registry.declared_limits().items():
            if queue in self.queues:
                await self.broker.set_limits(queue, limits)
                log.info("queue_limits_synced", extra={"queue": queue,
                                                        "limits": limits.as_json()})

    async def _hold(self, hold: Hold) -> None:
        """RateLimited: release the job and hold its key. Not sent (the broker is away): the
        lease expires and the job runs again (that attempt charged, as any lost outcome)."""
        try:
            (ok,) = await self.broker.release_held([LeaseRef(hold.job_id, hold.token)],
                                                   hold.hold_ms)
        except TRANSIENT_ERRORS:
            log.warning("rate_limited_release_failed",
                        extra={"held_job_id": hold.job_id, "detail": "its lease will expire"})
            return
        if not ok:
            log.warning("lease_lost", extra={"held_job_id": hold.job_id})

    def _leases(self) -> list[LeaseRef]:
        """Running jobs, and jobs whose outcome waits to be sent (their lease still counts
        until it lands). An outcome whose job was delivered to us again is stale: left out,
        so a lost-lease report names one delivery only."""
        running = [LeaseRef(s.delivery.job_id, s.delivery.token)
                   for s in self._in_flight.values() if not s.dropped]
        waiting = {r.job_id: r for r in self.completions.pending_leases()
                   if r.job_id not in self._in_flight}
        return running + list(waiting.values())

    def _on_lease_lost(self, refs: list[LeaseRef]) -> None:
        for ref in refs:
            slot = self._in_flight.get(ref.job_id)
            if slot is not None and slot.delivery.token == ref.token and not slot.dropped:
                self._drop(slot)

    def _on_cancel_requested(self, ref: LeaseRef, actor: str) -> None:
        """An operator cancelled a running job: async (and process) handlers are cancelled
        outright; a sync handler's `ctx.cancelled` turns True and the job ends when it
        returns (a thread cannot be stopped)."""
        slot = self._in_flight.get(ref.job_id)
        if (slot is None or slot.dropped or slot.delivery.token != ref.token
                or slot.cancel_by is not None):
            return
        d = slot.delivery
        slot.cancel_by = actor
        slot.cancel_event.set()
        try:
            spec = self._registry.get(d.type)
            in_thread = not spec.is_async and spec.isolation != "process"
        except UnknownJobType:
            in_thread = False
        with job_context(d.job_id, d.type, attempt=d.attempts):
            log.info("job_cancel_requested",
                     extra={"cancelled_by": actor, "queue": d.queue})
        if not in_thread and slot.task is not None:
            slot.task_cancelled = True
            slot.task.cancel()

    async def _end_cancelled(self, slots: list[_Slot]) -> None:
        """RUNNING -> CANCELLED for jobs we stopped, fenced by their leases. If this fails the
        lease expires and reaping ends the job CANCELLED all the same."""
        refs = [LeaseRef(s.delivery.job_id, s.delivery.token) for s in slots]
        try:
            ended = await self.broker.cancel_running(refs)
        except Exception as exc:  # logged; reaping ends the job
            log.warning("cancelled_jobs_not_ended",
                        extra={"count": len(refs), "error": repr(exc),
                               "detail": "reaping ends them once their lease expires"})
            return
        for slot, ok in zip(slots, ended, strict=True):
            d = slot.delivery
            with job_context(d.job_id, d.type, attempt=d.attempts):
                if ok:
                    log.info("job_cancelled", extra={"cancelled_by": slot.cancel_by})
                else:
                    log.warning("cancelled_job_lease_lost")

    def _drop(self, slot: _Slot) -> None:
        d = slot.delivery
        slot.dropped = True
        tracing.lease_lost(slot.span)
        if self.metrics is not None:
            self.metrics.outcome(d.queue, d.type, "lease_lost")
        with job_context(d.job_id, d.type, attempt=d.attempts):
            log.warning("lease_lost", extra={"queue": d.queue})
        if slot.task is not None:
            slot.task.cancel()

    # --- shutdown ---------------------------------------------------------------------------

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        pending = {s.task for s in self._in_flight.values() if s.task is not None}
        if pending and not self._hurry.is_set():
            log.info(
                "waiting_for_running_jobs",
                extra={"count": len(pending), "grace_s": self.settings.shutdown_grace_s},
            )
            hurry = asyncio.create_task(self._hurry.wait())
            deadline = loop.time() + self.settings.shutdown_grace_s
            while pending and not self._hurry.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                done, _ = await asyncio.wait(
                    pending | {hurry}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending -= done
            hurry.cancel()
        left = [s for s in self._in_flight.values() if not s.dropped]
        if not left:
            return
        for slot in left:
            slot.dropped = True
            if slot.task is not None:
                slot.task.cancel()
        await self.logs.flush()  # while the leases are still ours
        cancelling = [s for s in left if s.cancel_by is not None]
        if cancelling:  # asked to stop: end them CANCELLED rather than hand them back
            await self._end_cancelled(cancelling)
        await self._release([s for s in left if s.cancel_by is None])
        tasks = [s.task for s in left if s.task is not None]
        _, stuck = await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
        if stuck:
            self._ignored_cancel = len(stuck)
            log.warning("jobs_ignored_cancellation_at_shutdown", extra={"count": len(stuck)})

    async def _release(self, slots: list[_Slot]) -> None:
        """Hand leases back (attempt refunded) so another worker starts them right away."""
        if not slots:
            return
        refs = [LeaseRef(s.delivery.job_id, s.delivery.token) for s in slots]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RELEASE_DEADLINE_S
        backoff = BrokerBackoff(max_s=1.0)
        while True:
            try:
                results = await self.broker.release(refs)
                break
            except TRANSIENT_ERRORS as exc:
                delay = backoff.next_delay_s()
                if loop.time() + delay > deadline:
                    log.error(
                        "release_failed_broker_unavailable",
                        extra={"count": len(refs), "error": repr(exc),
                               "detail": "the leases will expire and be reaped"},
                    )
                    return
                await asyncio.sleep(delay)
            except Exception:
                log.exception("release_failed", extra={"count": len(refs)})
                return
        log.info(
            "running_jobs_released", extra={"released": sum(results), "requested": len(refs)}
        )
        if self.metrics is not None:
            for slot, ok in zip(slots, results, strict=False):
                if ok:
                    self.metrics.outcome(slot.delivery.queue, slot.delivery.type, "released")

    def _answered(self, item: AckItem | FailItem, reply: object) -> None:
        """The broker's answer to one outcome, counted by what it did (metrics on)."""
        series = self._labels.pop((item.job_id, item.token), None)
        if series is None or reply == DROPPED:
            return
        if isinstance(item, AckItem):
            outcome = "succeeded" if reply else "lease_lost"
        elif reply == JobState.DEAD:
            outcome = "dead"
        elif isinstance(reply, JobState):
            outcome = "failed"
        else:
            outcome = "lease_lost"
        series.count(outcome)
