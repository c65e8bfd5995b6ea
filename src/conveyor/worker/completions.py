"""Batch job outcomes: one `ack()` and one `fail()` round trip per flush, for any number of jobs.

There is no timer: the flusher sends whatever is pending as soon as it exists, so under load
the batches grow on their own while the previous round trip is in flight. Broker errors are
retried with backoff and nothing is dropped; a late ack is harmless because the lease token
fences it (the broker rejects it if the job moved on).
"""

from __future__ import annotations

import asyncio
import contextlib

from conveyor.brokers.base import AckItem, Broker, FailItem
from conveyor.jobs import JobState
from conveyor.logging import get_logger
from conveyor.worker.backoff import TRANSIENT_ERRORS, Backoff

log = get_logger("conveyor.worker.completions")


class Completions:
    def __init__(self, broker: Broker, *, backoff: Backoff | None = None) -> None:
        self._broker = broker
        self._acks: list[AckItem] = []
        self._fails: list[FailItem] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._backoff = backoff or Backoff()
        self._task: asyncio.Task[None] | None = None
        self.acked = 0
        self.failed = 0
        self.rejected = 0

    @property
    def pending(self) -> int:
        return len(self._acks) + len(self._fails)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="conveyor-completions"
            )

    def submit(self, outcome: AckItem | FailItem) -> None:
        if isinstance(outcome, AckItem):
            self._acks.append(outcome)
        else:
            self._fails.append(outcome)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything submitted so far has been sent (or given up at close)."""
        if self._task is None:
            self.start()
        await self._idle.wait()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Drain, then stop. Past `timeout_s` (broker down) unsent outcomes are dropped and
        logged: their leases expire and the jobs are delivered again (at-least-once)."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            if self.pending:
                log.error(
                    "outcomes dropped at shutdown: broker unreachable",
                    extra={"count": self.pending, "job_ids": self._pending_ids()[:50]},
                )
        self._task = None

    def _pending_ids(self) -> list[str]:
        return [a.job_id for a in self._acks] + [f.job_id for f in self._fails]

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._acks or self._fails:
                await self._flush_once()
            self._idle.set()
            if self._closing:
                return

    async def _flush_once(self) -> None:
        acks, self._acks = self._acks, []
        fails, self._fails = self._fails, []
        try:
            if acks and fails:
                ack_res, fail_res = await asyncio.gather(
                    self._broker.ack(acks), self._broker.fail(fails)
                )
            elif acks:
                ack_res, fail_res = await self._broker.ack(acks), []
            else:
                ack_res, fail_res = [], await self._broker.fail(fails)
        except TRANSIENT_ERRORS as exc:
            # Put them back in front; newer items keep their order behind them.
            self._acks[:0] = acks
            self._fails[:0] = fails
            delay = self._backoff.next_delay_s()
            log.warning(
                "broker unavailable, completions will be retried",
                extra={"error": repr(exc), "pending": self.pending, "retry_in_s": round(delay, 3)},
            )
            await asyncio.sleep(delay)
            return
        except Exception:
            # Not transient (a bug, a corrupt reply): retrying would loop forever. The
            # leases expire and the jobs run again, which at-least-once allows.
            log.exception(
                "completions batch failed, outcomes dropped",
                extra={"count": len(acks) + len(fails)},
            )
            return
        self._backoff.reset()
        self._account(acks, ack_res, fails, fail_res)

    def _account(
        self,
        acks: list[AckItem],
        ack_res: list[bool],
        fails: list[FailItem],
        fail_res: list[JobState | None],
    ) -> None:
        for item, ok in zip(acks, ack_res, strict=False):
            if ok:
                self.acked += 1
            else:
                self.rejected += 1
                log.warning("ack rejected: lease lost", extra={"job_id": item.job_id})
        for fitem, state in zip(fails, fail_res, strict=False):
            if state is not None:
                self.failed += 1
            else:
                self.rejected += 1
                log.warning(
                    "fail rejected: lease lost",
                    extra={"job_id": fitem.job_id, "error_code": fitem.error_code},
                )
