"""streaq in the comparison: one `Worker` with N concurrent tasks on Redis streams."""

from __future__ import annotations

import os
from typing import Any

from streaq import Worker

from bench.peers._driver import QUEUE, URL, AsyncAdapter, arecord

worker = Worker(redis_url=URL, queue_name=QUEUE,
                concurrency=int(os.environ.get("BENCH_CONCURRENCY", "16")))


@worker.task()
async def job(payload: dict[str, Any]) -> None:
    await arecord(payload)


class Adapter(AsyncAdapter):
    async def open(self) -> None:
        await worker.__aenter__()

    async def close(self) -> None:
        await worker.__aexit__(None, None, None)

    async def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        if delay:
            await job.enqueue(payload).start(delay=delay)
        else:
            await job.enqueue(payload)

    async def enqueue_batch(self, payloads: list[dict[str, Any]]) -> None:
        await worker.enqueue_many([job.enqueue(p) for p in payloads])

    def work(self, concurrency: int) -> None:
        worker.run_sync()
