"""In-process wake-ups for `wait_for_work`: a write that adds work wakes every waiter at once.

Other processes cannot reach these futures; for them the broker polls `PRAGMA data_version`
(see `SqliteBroker.wait_for_work`). This only makes the same process's wake-up instant.
"""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        """Wake every waiter (of any event loop: the sync client runs its own)."""
        waiters, self._waiters = self._waiters, set()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for fut in waiters:
            loop = fut.get_loop()
            if loop is running:
                _wake(fut)
            elif not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_wake, fut)

    async def wait(self, timeout_s: float) -> bool:
        """Sleep until `notify` or the timeout; True when notified."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            done, _ = await asyncio.wait([fut], timeout=max(timeout_s, 0.0))
        finally:
            self._waiters.discard(fut)
            fut.cancel()
        return bool(done)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
