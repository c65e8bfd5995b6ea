"""Periodic upkeep every worker does for its queues: promote due jobs, reap expired leases,
purge finished jobs past retention, then run the hooks (the DLQ worker, `worker/dlq.py`:
`on_dead` hooks and per-type redrive policies; `run_worker` registers it).

Every worker runs it, so no scheduler process exists that could be a single point of
failure; the broker's scripts are atomic and bounded per call, so concurrent runs are safe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from conveyor.brokers.base import Broker
from conveyor.logging import get_logger
from conveyor.worker.backoff import TRANSIENT_ERRORS
from conveyor.worker.metrics import WorkerMetrics, step_timer
from conveyor.worker.ticker import run_every

log = get_logger("conveyor.worker.maintenance")

#: A DLQ policy or similar: called once per tick with the broker and the worker's queues.
MaintenanceHook = Callable[[Broker, Sequence[str]], Awaitable[None]]


class Maintenance:
    def __init__(
        self,
        broker: Broker,
        queues: Sequence[str],
        *,
        interval_s: float,
        hooks: Sequence[MaintenanceHook] = (),
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._broker = broker
        self._queues = list(queues)
        self._interval_s = interval_s
        self.hooks: list[MaintenanceHook] = list(hooks)
        self.ticks = 0

    async def run(self) -> None:
        await run_every(self._interval_s, self.tick)

    async def tick(self) -> None:
        for queue in self._queues:
            try:
                await self._queue_tick(queue)
            except TRANSIENT_ERRORS as exc:
                log.warning(
                    "maintenance_skipped",
                    extra={"queue": queue, "error": repr(exc)},
                )
                return  # the other queues would fail the same way; next tick retries
            except Exception:
                log.exception("maintenance_failed", extra={"queue": queue})
        for hook in self.hooks:
            try:
                with step_timer(self._metrics, "hooks"):
                    await hook(self._broker, self._queues)
            except Exception:
                log.exception("maintenance_hook_failed", extra={"hook": repr(hook)})
        self.ticks += 1

    async def _queue_tick(self, queue: str) -> None:
        m = self._metrics
        with step_timer(m, "promote"):
            promoted = await self._broker.promote_due(queue)
        with step_timer(m, "reap"):
            reaped = await self._broker.reap_expired(queue)
        if m is not None:
            m.expired(queue, reaped.requeued, reaped.dead)
        with step_timer(m, "expire"):
            expired = await self._broker.expire_finished(queue)
        if promoted or reaped.requeued or reaped.dead or expired:
            log.info(
                "maintenance",
                extra={
                    "queue": queue,
                    "promoted": promoted,
                    "requeued": reaped.requeued,
                    "dead": reaped.dead,
                    "expired": expired,
                },
            )
