"""SAQ in the comparison: one `Worker` with N concurrent jobs on its Redis queue."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from saq import Queue, Worker

from bench.peers._driver import QUEUE, AsyncAdapter, arecord


async def job(ctx: dict[str, Any], *, payload: dict[str, Any]) -> None:
    await arecord(payload)


class Adapter(AsyncAdapter):
    async def open(self) -> None:
        self.queue = Queue.from_url(self.url, name=QUEUE)
        await self.queue.connect()

    async def close(self) -> None:
        await self.queue.disconnect()

    async def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        scheduled = time.time() + delay if delay else 0
        await self.queue.enqueue("job", payload=payload, scheduled=scheduled)

    def work(self, concurrency: int) -> None:
        async def main() -> None:  # start() stops the worker itself at SIGTERM
            queue = Queue.from_url(self.url, name=QUEUE)
            await Worker(queue, functions=[job], concurrency=concurrency).start()

        asyncio.run(main())
