"""taskiq in the comparison: taskiq-redis's `ListQueueBroker` (a plain list, no acks: its
fastest broker) and the `taskiq worker` CLI with one worker process."""

from __future__ import annotations

import os
import sys
from typing import Any

from taskiq_redis import ListQueueBroker

from bench.peers._driver import QUEUE, URL, AsyncAdapter, arecord

broker = ListQueueBroker(URL, queue_name=QUEUE)


@broker.task(task_name="bench.job")
async def job(payload: dict[str, Any]) -> None:
    await arecord(payload)


class Adapter(AsyncAdapter):
    async def open(self) -> None:
        await broker.startup()

    async def close(self) -> None:
        await broker.shutdown()

    async def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        if delay:
            raise NotImplementedError("no delayed delivery in taskiq-redis brokers")
        await job.kiq(payload)

    def work(self, concurrency: int) -> None:
        taskiq = os.path.join(os.path.dirname(sys.executable), "taskiq")
        os.execv(taskiq, [
            taskiq, "worker", f"{__name__}:broker", "--workers", "1",
            "--max-async-tasks", str(concurrency), "--log-level", "WARNING",
        ])
