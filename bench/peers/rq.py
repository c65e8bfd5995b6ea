"""RQ in the comparison: `SimpleWorker` (runs jobs in its own process instead of forking a
work horse per job, RQ's documented choice for speed) with its scheduler for delayed jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker

from bench.peers._driver import QUEUE, SyncAdapter, record


def job(payload: dict[str, Any]) -> None:
    record(payload)


class Adapter(SyncAdapter):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.conn = Redis.from_url(url)
        self.queue = Queue(QUEUE, connection=self.conn)

    def close(self) -> None:
        self.conn.close()

    def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        if delay:
            self.queue.enqueue_in(timedelta(seconds=delay), job, payload)
        else:
            self.queue.enqueue(job, payload)

    def enqueue_batch(self, payloads: list[dict[str, Any]]) -> None:
        self.queue.enqueue_many([Queue.prepare_data(job, (p,)) for p in payloads])

    def work(self, concurrency: int) -> None:
        worker = SimpleWorker([self.queue], connection=self.conn)
        worker.work(with_scheduler=True, logging_level="WARNING")
