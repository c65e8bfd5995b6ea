"""The worker's part of schedules (issue 15): a maintenance hook that fires the due schedules
of the worker's queues every maintenance tick, and the start-up sync of declared schedules.

Every worker runs both; there is no leader. Firing is a conditional atomic step per schedule
(`schedules/store.py`), so concurrent workers make one job per tick; ticks are fired ahead
(`LOOKAHEAD_MS`) as delayed jobs, so they start on time through the normal promote path.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.brokers.base import Broker
from conveyor.client import AsyncConveyor
from conveyor.errors import ConveyorError
from conveyor.handlers.registry import Registry
from conveyor.logging import get_logger
from conveyor.schedules.declared import declared
from conveyor.worker.backoff import TRANSIENT_ERRORS

log = get_logger("conveyor.worker.schedules")


class ScheduleFirer:
    """A `MaintenanceHook`: fires due schedules, queue by queue (one read and at most a few
    fire calls per queue and tick, whatever the number of schedules due: bounded)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._client: AsyncConveyor | None = None
        self.fired = 0
        self.skipped = 0

    async def __call__(self, broker: Broker, queues: Sequence[str]) -> None:
        if self._client is None or self._client.broker is not broker:
            self._client = AsyncConveyor(broker, registry=self._registry)
        for queue in queues:
            try:
                outcomes = await self._client.schedules.fire_due(queue)
            except TRANSIENT_ERRORS as exc:
                log.warning("schedules_skipped_broker_unavailable",
                            extra={"queue": queue, "error": repr(exc)})
                return
            made = sum(len(o.job_ids) for o in outcomes)
            skipped = sum(o.skipped for o in outcomes)
            self.fired += made
            self.skipped += skipped
            if made or skipped:
                log.debug("schedules_fired", extra={"queue": queue, "jobs": made,
                                                    "skipped": skipped})


async def sync_declared(broker: Broker, registry: Registry) -> dict[str, str]:
    """Save the schedules declared in the app (paused state kept): name -> outcome. A bad
    declaration is logged and left out; the others are synced."""
    try:
        schedules = declared(registry)
    except ConveyorError as exc:
        log.error("declared_schedules_not_synced", extra={"error": exc.message,
                                                          "details": exc.details})
        return {}
    if not schedules:
        return {}
    client = AsyncConveyor(broker, registry=registry)
    out: dict[str, str] = {}
    for s in schedules:
        try:
            out.update(await client.schedules.sync([s]))
        except ConveyorError as exc:
            log.error("declared_schedule_not_synced", extra={
                "schedule": s.name, "error": exc.message, "details": exc.details})
    changed = {n: o for n, o in out.items() if o != "same"}
    log.info("declared_schedules_synced", extra={"count": len(out), "changed": changed})
    return out
