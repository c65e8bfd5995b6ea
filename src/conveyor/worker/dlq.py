"""The DLQ worker (the seed's dlq.worker / processDLQJob): a maintenance hook that runs the
`on_dead` hooks of fresh deaths, then redrives dead jobs whose type's policy says so.

Hooks are at-least-once: the broker records each death in the step that makes the job DEAD;
this worker claims events under a lease, runs the hooks and only then acks them, so a worker
that crashes mid-hook leaves the event to be claimed again when the lease passes. A hook's
own failure is logged and counts as run: the job itself is never touched by a hook.

Policies walk each queue's dead index with one cursor per (queue, type), kept across ticks:
a job passed over (poison, or out of redrives) can never become eligible again, and a job
that dies again gets a later death time, so the walk never needs to start over.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence

from conveyor.brokers.base import Broker, DeathEvent
from conveyor.dlq.policy import DeadHook, DlqPolicy
from conveyor.errors import BrokerMisconfigured
from conveyor.handlers import Registry
from conveyor.jobs import Job
from conveyor.logging import get_logger
from conveyor.worker.backoff import TRANSIENT_ERRORS

log = get_logger("conveyor.worker.dlq")

POLICY_ACTOR = "policy"
#: how long a claimed death stays with its claimer before another worker may take it
CLAIM_LEASE_S = 60.0
#: how long one `on_dead` hook may run (a sync hook's thread cannot be stopped: it is only
#: no longer waited for); keep hooks short, e.g. enqueue a notification job
HOOK_TIMEOUT_S = 10.0
#: deaths claimed, and dead jobs redriven, per queue (and per type) per tick
BATCH = 100
#: errors that skip the rest of a pass (the next tick tries again)
SKIPPED_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, BrokerMisconfigured)
#: hooks running at once: a hook may use the broker itself, and its pool is finite
HOOK_CONCURRENCY = 16


async def call_hook(hook: DeadHook, job: Job) -> None:
    """Await an async hook; run a sync one in a thread so it cannot block the loop."""
    if inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(type(hook).__call__):
        result = hook(job)
    else:
        result = await asyncio.to_thread(hook, job)
    if inspect.isawaitable(result):
        await result


class DlqWorker:
    def __init__(
        self, registry: Registry, *, claim_lease_s: float = CLAIM_LEASE_S,
        hook_timeout_s: float = HOOK_TIMEOUT_S, batch: int = BATCH,
    ) -> None:
        self._registry = registry
        self._lease_ms = int(claim_lease_s * 1000)
        self._hook_timeout_s = hook_timeout_s
        self._batch = batch
        self._cursors: dict[tuple[str, str], str] = {}
        #: counters, for logs and tests
        self.passes = 0
        self.hooks_run = 0
        self.hooks_failed = 0
        self.redriven = 0

    async def __call__(self, broker: Broker, queues: Sequence[str]) -> None:
        for queue in queues:
            try:
                await self.handle_deaths(broker, queue)
                await self.apply_policies(broker, queue)
            except SKIPPED_ERRORS as exc:
                log.warning("dlq_worker_skipped",
                            extra={"queue": queue, "error": repr(exc)})
                return
            except Exception:
                log.exception("dlq_worker_failed", extra={"queue": queue})
        self.passes += 1

    # --- on_dead hooks ----------------------------------------------------------------------
    async def handle_deaths(self, broker: Broker, queue: str) -> int:
        """Claim this queue's fresh deaths, run their hooks, ack them; returns acks."""
        events = await broker.claim_deaths(queue, self._batch, self._lease_ms)
        done: list[DeathEvent] = []
        pending: list[tuple[DeathEvent, DlqPolicy]] = []
        for event in events:
            if not event.type:  # the job is gone (purged, expired): nothing to run hooks on
                done.append(event)
            elif event.type not in self._registry:
                continue  # a type only other workers know: the claim lapses, they take it
            else:
                policy = self._registry.get(event.type).dlq_policy
                if policy is None or not policy.on_dead:
                    done.append(event)
                else:
                    pending.append((event, policy))
        if pending:
            try:  # one batched read; broker trouble: the claims lapse and are retried then
                jobs = await broker.get_many([event.job_id for event, _ in pending])
            except Exception as exc:
                log.warning("on_dead_hooks_postponed",
                            extra={"count": len(pending), "error": repr(exc)})
                jobs = []
                pending = []
            slots = asyncio.Semaphore(HOOK_CONCURRENCY)

            async def run(event: DeathEvent, policy: DlqPolicy, job: Job | None) -> None:
                if job is not None:  # None: deleted meanwhile, nothing to run hooks on
                    async with slots:
                        await self._run_hooks(event, policy, job)

            await asyncio.gather(*(run(event, policy, job)
                                   for (event, policy), job in zip(pending, jobs, strict=True)))
            done += [event for event, _ in pending]
        return await broker.ack_deaths(queue, done) if done else 0

    async def _run_hooks(self, event: DeathEvent, policy: DlqPolicy, job: Job) -> None:
        for hook in policy.on_dead:
            try:
                # each hook gets its own copy: what a hook does to it changes nothing stored
                await asyncio.wait_for(call_hook(hook, job.model_copy(deep=True)),
                                       self._hook_timeout_s)
                self.hooks_run += 1
            except Exception:
                self.hooks_failed += 1
                log.exception(
                    "on_dead_hook_failed",
                    extra={"dead_job_id": event.job_id, "job_type": event.type,
                           "hook": getattr(hook, "__qualname__", repr(hook))},
                )

    # --- redrive policies -------------------------------------------------------------------
    async def apply_policies(self, broker: Broker, queue: str) -> int:
        """Redrive this queue's dead jobs whose type's policy is due; returns how many."""
        moved = 0
        now = await broker.now_ms()
        for type_name in self._registry.types():
            policy = self._registry.get(type_name).dlq_policy
            if policy is None or not policy.redrives:
                continue
            selector = policy.selector(type_name, now)
            key = (queue, type_name)
            page = await broker.dlq_scan(
                queue, selector, limit=self._batch, cursor=self._cursors.get(key)
            )
            if page.cursor is not None:
                self._cursors[key] = page.cursor
            if not page.ids:
                continue
            done = await broker.dlq_redrive(queue, page.ids, actor=POLICY_ACTOR,
                                            selector=selector)
            moved += len(done)
            if done:
                log.info("dlq_policy_redrove",
                         extra={"queue": queue, "job_type": type_name, "count": len(done)})
        self.redriven += moved
        return moved
