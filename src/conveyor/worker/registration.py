"""Announce this worker in the broker's registry (with a TTL) so operators can list live
workers and the jobs in their hands; a crashed worker simply ages out."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Sequence

from conveyor.brokers.base import Broker, WorkerInfo
from conveyor.logging import get_logger
from conveyor.worker.backoff import TRANSIENT_ERRORS
from conveyor.worker.ticker import run_every

log = get_logger("conveyor.worker.registration")


class Registration:
    def __init__(
        self,
        broker: Broker,
        *,
        worker_id: str,
        queues: Sequence[str],
        concurrency: int,
        ttl_s: float,
        jobs: Callable[[], list[str]],
        metrics_url: str | None = None,
    ) -> None:
        self._metrics_url = metrics_url
        self._broker = broker
        self._worker_id = worker_id
        self._queues = list(queues)
        self._concurrency = concurrency
        self._ttl_s = ttl_s
        self._jobs = jobs
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._started_ms = 0
        self._started_loop = 0.0

    async def start(self) -> None:
        """Anchor start time to the broker's clock (the one clock), then register once."""
        self._started_loop = asyncio.get_running_loop().time()
        try:
            self._started_ms = await self._broker.now_ms()
        except TRANSIENT_ERRORS as exc:
            log.warning("broker_clock_unavailable_at_start", extra={"error": repr(exc)})
        await self.register()

    async def run(self) -> None:
        await run_every(self._ttl_s / 3, self.register, first_now=False)

    def info(self) -> WorkerInfo:
        elapsed_ms = int((asyncio.get_running_loop().time() - self._started_loop) * 1000)
        return WorkerInfo(
            id=self._worker_id,
            host=self._host,
            pid=self._pid,
            queues=list(self._queues),
            concurrency=self._concurrency,
            jobs=self._jobs(),
            started_at_ms=self._started_ms,
            last_seen_ms=self._started_ms + elapsed_ms if self._started_ms else 0,
            metrics_url=self._metrics_url,
        )

    async def register(self) -> None:
        try:
            await self._broker.register_worker(self.info(), self._ttl_s)
        except TRANSIENT_ERRORS as exc:
            log.warning("worker_registration_failed", extra={"error": repr(exc)})
        except Exception:
            log.exception("worker_registration_failed")

    async def deregister(self) -> None:
        try:
            await self._broker.deregister_worker(self._worker_id)
        except Exception as exc:  # best effort: the TTL removes us anyway
            log.warning("worker_deregistration_failed", extra={"error": repr(exc)})
