"""BullMQ (its Python package) in the comparison: one `Worker` with N concurrent jobs."""

from __future__ import annotations

import asyncio
from typing import Any

from bullmq import Queue, Worker

from bench.peers._driver import QUEUE, AsyncAdapter, arecord, until_signal


async def process(job: Any, token: str) -> None:
    await arecord(job.data)


class Adapter(AsyncAdapter):
    async def open(self) -> None:
        self.queue = Queue(QUEUE, {"connection": self.url})

    async def close(self) -> None:
        await self.queue.close()

    async def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        await self.queue.add("job", payload, {"delay": int(delay * 1000)} if delay else {})

    async def enqueue_batch(self, payloads: list[dict[str, Any]]) -> None:
        await self.queue.addBulk([{"name": "job", "data": p} for p in payloads])

    def work(self, concurrency: int) -> None:
        async def main() -> None:
            worker = Worker(QUEUE, process, {"connection": self.url, "concurrency": concurrency})
            await until_signal()
            await worker.close()

        asyncio.run(main())
