"""Warn while a handler holds the event loop (a `time.sleep` or CPU work in an `async def`).

A blocked loop sends no heartbeats: past the lease the job is reaped and run again, and its
late outcome is refused. Nothing on the loop can notice while it is blocked, so a thread
watches a timestamp the loop refreshes: when it goes stale for longer than the threshold,
the thread logs `event loop blocked`, naming the job whose task holds the loop (and the
jobs in hand). When the loop runs again it logs how long the block lasted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from conveyor.logging import get_logger

log = get_logger("conveyor.worker.loop")

#: Slot tasks are named `<prefix><job id>`, so the watchdog can say whose task holds the loop.
JOB_TASK_PREFIX = "conveyor-job:"
MAX_NAMED = 20


class LoopWatchdog:
    def __init__(
        self, threshold_s: float, running: Callable[[], list[tuple[str, str]]]
    ) -> None:
        self._threshold_s = threshold_s
        self._tick_s = max(threshold_s / 4, 0.005)
        self._running = running
        self._last = time.monotonic()
        self._done = threading.Event()
        #: how many blocks were reported (for tests and the stop line)
        self.blocks = 0

    async def run(self) -> None:
        """Tick on the loop until cancelled; the watching thread lives as long."""
        loop = asyncio.get_running_loop()
        watcher = threading.Thread(
            target=self._watch, args=(loop,), name="conveyor-loop-watch", daemon=True
        )
        self._last = time.monotonic()
        watcher.start()
        try:
            while True:
                await asyncio.sleep(self._tick_s)
                now = time.monotonic()
                late = now - self._last - self._tick_s
                self._last = now
                if late > self._threshold_s:
                    log.warning("event_loop_was_blocked", extra={"blocked_s": round(late, 3)})
        finally:
            self._done.set()

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        reported = None
        while not self._done.wait(self._tick_s):
            last = self._last
            blocked = time.monotonic() - last - self._tick_s
            if blocked <= self._threshold_s or reported == last:
                continue
            reported = last
            self.blocks += 1
            self._report(loop, blocked)

    def _report(self, loop: asyncio.AbstractEventLoop, blocked_s: float) -> None:
        try:
            jobs = self._running()[:MAX_NAMED]
        except RuntimeError:  # the loop resumed and changed the set meanwhile
            jobs = []
        task = asyncio.current_task(loop)  # whose step is on the loop right now
        name = task.get_name() if task is not None else ""
        holder = name[len(JOB_TASK_PREFIX):] if name.startswith(JOB_TASK_PREFIX) else None
        types = dict(jobs)
        extra: dict[str, object] = {
            "blocked_s": round(blocked_s, 3),
            "threshold_s": self._threshold_s,
            "running_jobs": [f"{job_id} ({job_type})" for job_id, job_type in jobs],
            "hint": "an async handler is blocking (time.sleep, CPU work, blocking I/O): "
                    "make it a plain def (thread pool) or await the slow call",
        }
        if holder is not None:
            extra.update(job_id=holder, job_type=types.get(holder, "?"))
        log.warning("event_loop_blocked", extra=extra)
