"""Huey in the comparison: `RedisHuey` (blocking reads) and one consumer process with N
worker threads; its scheduler (for delayed tasks) ticks once a second."""

from __future__ import annotations

from typing import Any

from huey import RedisHuey

from bench.peers._driver import QUEUE, URL, SyncAdapter, record

huey = RedisHuey(QUEUE, url=URL)


@huey.task(name="bench.job")
def job(payload: dict[str, Any]) -> None:
    record(payload)


class Adapter(SyncAdapter):
    def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        if delay:
            job.schedule(args=(payload,), delay=delay)
        else:
            job(payload)

    def work(self, concurrency: int) -> None:
        huey.create_consumer(workers=concurrency, worker_type="thread").run()
