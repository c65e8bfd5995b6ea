"""Coalesces concurrent single enqueues into one broker call (auto-pipelining).

A lone caller sends its job at once, from its own task: batching costs it nothing. Callers
that arrive while a call is on the wire queue up and go together in the next call, so many
concurrent producers (an API under load) share round trips. Each caller still gets its own
result or its own error.
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
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None  # held: the loop keeps weak refs

    async def submit(self, spec: JobSpec) -> EnqueueResult:
        if self._busy:
            fut: asyncio.Future[EnqueueResult] = asyncio.get_running_loop().create_future()
            self._pending.append((spec, fut))
            return await fut
        self._busy = True
        try:
            (result,) = await self._broker.enqueue([spec])
        finally:
            if self._pending:  # arrived meanwhile: drain them in the background
                self._drainer = asyncio.get_running_loop().create_task(self._drain())
            else:
                self._busy = False
        return result

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
            self._busy = False
            self._drainer = None
