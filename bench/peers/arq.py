"""arq in the comparison: one worker with `max_jobs` concurrent jobs, polling its queue every
50 ms (`poll_delay`; each poll reads at most `queue_read_limit` = 5 x `max_jobs` jobs)."""

from __future__ import annotations

from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

from bench.peers._driver import QUEUE, AsyncAdapter, arecord

#: arq's documented knob: how often the worker looks for jobs (default 0.5 s)
POLL_DELAY_S = 0.05


async def job(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    await arecord(payload)


class Adapter(AsyncAdapter):
    async def open(self) -> None:
        self.pool = await create_pool(RedisSettings.from_dsn(self.url), default_queue_name=QUEUE)

    async def close(self) -> None:
        await self.pool.aclose()

    async def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        await self.pool.enqueue_job("job", payload, _defer_by=delay)

    def work(self, concurrency: int) -> None:
        worker = Worker(
            functions=[job], redis_settings=RedisSettings.from_dsn(self.url), queue_name=QUEUE,
            max_jobs=concurrency, handle_signals=True, poll_delay=POLL_DELAY_S,
        )
        worker.run()
