"""Coalesces concurrent single enqueues into one broker call (auto-pipelining).

While one batch is on the wire, every enqueue that arrives joins the next batch; a lone
caller is sent at once, so batching costs no latency and many concurrent callers (an API
under load) share round trips. Each caller still gets its own result or error.
"""

from __future__ import annotations

import asyncio

from conveyor.brokers.base import Broker
from conveyor.jobs import EnqueueResult, JobSpec

MAX_BATCH = 1000


class EnqueueBatcher:
    def __init__(self, broker: Broker, max_batch: int = MAX_BATCH) -> None:
        self._broker = broker
        self._max_batch = max_batch
        self._pending: list[tuple[JobSpec, asyncio.Future[EnqueueResult]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, spec: JobSpec) -> EnqueueResult:
        fut: asyncio.Future[EnqueueResult] = asyncio.get_running_loop().create_future()
        self._pending.append((spec, fut))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    results = await self._broker.enqueue([spec for spec, _ in batch])
                except Exception as exc:  # every caller of this batch sees the error
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), res in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(res)
        except asyncio.CancelledError:
            for _, fut in self._pending:
                fut.cancel()
            self._pending.clear()
            raise
        finally:
            self._drainer = None
