"""`ctx.progress(value, message)`: a handler's progress reports, throttled per job.

At most one write a second per job (`interval_s`): a report within the interval waits, and a
newer one replaces it, so the last value always lands, at the latest when the handler
returns (`close`, before the outcome is sent: the write needs the lease). Writes are fenced
(`Broker.progress`): a stale worker's report changes nothing. Safe to call from the loop
or from a sync handler's thread; a process-isolated handler's reports come up its pipe
(`isolation.run_in_process`) and are handed to its reporter here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from conveyor.brokers.base import Broker, ProgressItem, check_progress
from conveyor.errors import ConveyorError

log = logging.getLogger("conveyor.worker.progress")

INTERVAL_S = 1.0


class ProgressReporter:
    def __init__(self, broker: Broker, job_id: str, token: str, *,
                 interval_s: float = INTERVAL_S) -> None:
        self._broker = broker
        self._job_id = job_id
        self._token = token
        self._interval_s = interval_s
        self._loop = asyncio.get_running_loop()
        self._pending: tuple[float, str | None] | None = None
        self._last_write = -interval_s - 1.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: the flush task is waiting out the interval (not writing): safe to cancel
        self._sleeping = False

    def report(self, value: float, message: str | None = None) -> None:
        """Validate now (a bad value raises in the handler), write soon."""
        check_progress(value, message)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._set(float(value), message)
        else:
            self._loop.call_soon_threadsafe(self._set, float(value), message)

    def _set(self, value: float, message: str | None) -> None:
        if self._closed:
            return
        self._pending = (value, message)
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        wait = self._last_write + self._interval_s - self._loop.time()
        if wait > 0:
            self._sleeping = True
            try:
                await asyncio.sleep(wait)
            finally:
                self._sleeping = False
        await self._write()

    async def _write(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        self._last_write = self._loop.time()
        try:
            await self._broker.progress(
                [ProgressItem(self._job_id, self._token, pending[0], pending[1])])
        except ConveyorError as exc:  # progress is advisory: never the job's failure
            log.warning("progress_not_stored", extra={"job_id": self._job_id,
                                                      "error": str(exc)[:200]})

    async def close(self) -> None:
        """Write the last pending report now (before the outcome), then stop."""
        self._closed = True
        task = self._task
        if task is not None and not task.done():
            if self._sleeping:  # nothing in flight: the write below sends what waits
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # a write in flight finishes (cancelled, it might not land)
        await self._write()
