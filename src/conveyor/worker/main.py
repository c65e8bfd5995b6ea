"""`run_worker`: the process entry point behind `conveyor worker` (logging, app modules,
broker connection, signal handling). Returns the process exit code."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from conveyor.brokers import broker_from_url
from conveyor.brokers.base import Broker
from conveyor.errors import BrokerMisconfigured, ConveyorError
from conveyor.handlers import default_registry, load_app
from conveyor.logging import configure_logging, get_logger
from conveyor.queues import validate_queue_name
from conveyor.runloop import run_loop
from conveyor.settings import Settings
from conveyor.worker.backoff import TRANSIENT_ERRORS, Backoff
from conveyor.worker.dlq import DlqWorker
from conveyor.worker.runner import Worker

log = get_logger("conveyor.worker")

EXIT_OK = 0
EXIT_ERROR = 1


def run_worker(*, queues: list[str], concurrency: int, app: str | None, settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    try:
        for queue in queues:
            validate_queue_name(queue)
        if app:
            load_app(app)
    except ConveyorError as exc:
        log.error("worker not started", extra={"error": exc.message, "code": str(exc.code)})
        return EXIT_ERROR
    return run_loop(_serve(queues, concurrency, settings))


def build_broker(settings: Settings) -> Broker:
    return broker_from_url(
        settings.broker_url,
        key_prefix=settings.key_prefix,
        retention_s=settings.retention_s,
        dlq_retention_s=settings.dlq_retention_s,
        queue_retention_s=dict(settings.queue_retention_s),
        redis_timeout_s=settings.redis_timeout_s,
        redis_check_interval_s=settings.redis_check_interval_s,
    )


async def _serve(queues: list[str], concurrency: int, settings: Settings) -> int:
    broker = build_broker(settings)
    worker = Worker(
        broker, queues=queues, concurrency=concurrency, registry=default_registry,
        settings=settings,
        # the DLQ worker: on_dead hooks and per-type redrive policies, every maintenance tick
        maintenance_hooks=[DlqWorker(default_registry)],
    )
    stop_asked = asyncio.Event()

    def on_signal() -> None:
        stop_asked.set()
        worker.stop()  # the first signal drains, a second releases running jobs at once

    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        if not await _connect(broker, stop_asked):
            return EXIT_ERROR if not stop_asked.is_set() else EXIT_OK
        await worker.run()
        return EXIT_OK
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await broker.close()


async def _connect(broker: Broker, stop_asked: asyncio.Event) -> bool:
    """Connect, retrying while the broker is unreachable (it may start after us). A
    misconfigured broker is fatal: running on it could lose jobs."""
    backoff = Backoff(initial_s=0.5, max_s=10.0)
    while not stop_asked.is_set():
        try:
            await broker.connect()
            return True
        except BrokerMisconfigured as exc:
            log.error(
                "broker misconfigured, refusing to start",
                extra={"error": exc.message, "details": exc.details},
            )
            return False
        except TRANSIENT_ERRORS as exc:
            delay = backoff.next_delay_s()
            log.warning(
                "broker unavailable at start, retrying",
                extra={"error": repr(exc), "retry_in_s": round(delay, 3)},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_asked.wait(), delay)
    return False
