"""Conveyor in the comparison: the async client, and `conveyor worker` (the documented CLI)
loading this module for its `bench.peer` job type."""

from __future__ import annotations

import os
import sys
from typing import Any

from bench.peers._driver import QUEUE, AsyncAdapter, arecord
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.handlers import handler

JOB_TYPE = "bench.peer"


@handler(JOB_TYPE, max_attempts=1)
async def job(payload: Any) -> None:
    await arecord(payload)


class Adapter(AsyncAdapter):
    async def open(self) -> None:
        self.client = AsyncConveyor.from_url(self.url, key_prefix="cv")
        await self.client.connect()

    async def close(self) -> None:
        await self.client.close()

    async def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        await self.client.enqueue(JOB_TYPE, payload, queue=QUEUE, delay=delay)

    async def enqueue_batch(self, payloads: list[dict[str, Any]]) -> None:
        await self.client.enqueue_many([JobRequest(JOB_TYPE, p, queue=QUEUE) for p in payloads])

    def work(self, concurrency: int) -> None:
        env = dict(os.environ, CONVEYOR_BROKER_URL=self.url, CONVEYOR_KEY_PREFIX="cv",
                   CONVEYOR_LOG_LEVEL="WARNING")
        os.execve(sys.executable, [
            sys.executable, "-m", "conveyor", "worker", "--queues", QUEUE,
            "--concurrency", str(concurrency), "--app", __name__,
        ], env)
