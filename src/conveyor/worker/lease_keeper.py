"""Keep the leases of running jobs alive: one `heartbeat()` for all of them every period.

A lease reported lost means another delivery of the job may already exist (the lease
expired and was reaped, or an operator moved the job): the local run is cancelled at once
and its outcome is never sent. The reply also names held jobs an operator cancelled
(`cancel` of a RUNNING job): they go to `on_cancel`, and the runner stops their handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from conveyor.brokers.base import Broker, LeaseRef
from conveyor.logging import get_logger
from conveyor.worker.backoff import TRANSIENT_ERRORS
from conveyor.worker.metrics import WorkerMetrics, call_timer
from conveyor.worker.ticker import run_every

log = get_logger("conveyor.worker.lease_keeper")


class LeaseKeeper:
    def __init__(
        self,
        broker: Broker,
        *,
        interval_s: float,
        lease_ms: int,
        leases: Callable[[], Sequence[LeaseRef]],
        on_lost: Callable[[list[LeaseRef]], None],
        metrics: WorkerMetrics | None = None,
        on_cancel: Callable[[LeaseRef, str], None] | None = None,
    ) -> None:
        self._metrics = metrics
        self._broker = broker
        self._interval_s = interval_s
        self._lease_ms = lease_ms
        self._leases = leases
        self._on_lost = on_lost
        self._on_cancel = on_cancel
        self.beats = 0

    async def run(self) -> None:
        """Heartbeat until cancelled. The first beat waits a period: fetch set fresh leases."""
        await run_every(self._interval_s, self.beat, first_now=False)

    async def beat(self) -> None:
        leases = list(self._leases())
        if not leases:
            return
        try:
            with call_timer(self._metrics, "heartbeat"):
                lost = await self._broker.heartbeat(leases, self._lease_ms)
        except TRANSIENT_ERRORS as exc:
            # The next beat retries; leases are long enough to miss a couple of beats.
            log.warning(
                "heartbeat_failed_broker_unavailable",
                extra={"error": repr(exc), "leases": len(leases)},
            )
            return
        except Exception:
            log.exception("heartbeat_failed", extra={"leases": len(leases)})
            return
        self.beats += 1
        if self._on_cancel is not None and lost.cancel_requested:
            # an operator cancelled these running jobs: the runner stops their handlers
            sent = {ref.job_id: ref for ref in leases}
            for job_id, actor in lost.cancel_requested.items():
                if job_id in sent:
                    self._on_cancel(sent[job_id], actor)
        if lost:
            # Hand back the refs we sent: the runner cancels a job only if its token still
            # matches, since it may have finished and been fetched again meanwhile.
            sent = {ref.job_id: ref for ref in leases}
            self._on_lost([sent[job_id] for job_id in lost if job_id in sent])
