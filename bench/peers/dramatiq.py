"""Dramatiq in the comparison: its Redis broker and one worker process with N threads (the
`dramatiq` CLI's worker, started in-process so the job counter lives in this process)."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker

from bench.peers._driver import QUEUE, URL, SyncAdapter, record, wait_signal

broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def job(payload: dict[str, Any]) -> None:
    record(payload)


class Adapter(SyncAdapter):
    def close(self) -> None:
        broker.close()

    def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        job.send_with_options(args=(payload,), delay=int(delay * 1000) if delay else None)

    def work(self, concurrency: int) -> None:
        worker = Worker(broker, worker_threads=concurrency)
        worker.start()
        wait_signal()
        worker.stop()
        broker.close()
