"""Celery in the comparison: one worker process with the solo pool and a high prefetch
multiplier (Celery's advice for many short tasks), no result backend."""

from __future__ import annotations

from typing import Any

from celery import Celery

from bench.peers._driver import QUEUE, URL, SyncAdapter, record

app = Celery("bench", broker=URL)
app.conf.update(
    task_default_queue=QUEUE, task_ignore_result=True, worker_prefetch_multiplier=64,
    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
)


@app.task(name="bench.job", ignore_result=True)
def job(payload: dict[str, Any]) -> None:
    record(payload)


class Adapter(SyncAdapter):
    def enqueue(self, payload: dict[str, Any], delay: float | None) -> None:
        job.apply_async((payload,), countdown=delay)

    def work(self, concurrency: int) -> None:
        app.worker_main([
            "worker", "--pool", "solo", "--concurrency", str(concurrency), "--loglevel",
            "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ])
