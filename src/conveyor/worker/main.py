"""`run_worker`: the process entry point behind `conveyor worker` (logging, app modules,
broker connection, signal handling). Returns the process exit code.

A stop signal ends the process within its grace period plus `FORCED_EXIT_MARGIN_S`, whatever
the handlers do: once the worker has released what it holds, handlers that are still running
(a sync thread that never returns, a task that swallows cancellation) would keep Python from
exiting, so the process exits without waiting for them; and a loop so blocked that the
worker cannot even drain is ended by a timer thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading

from conveyor.brokers import broker_from_settings
from conveyor.brokers.base import Broker
from conveyor.errors import BrokerMisconfigured, ConveyorError
from conveyor.handlers import default_registry, load_app
from conveyor.logging import configure_logging, get_logger
from conveyor.queues import validate_queue_name
from conveyor.runloop import run_loop
from conveyor.settings import Settings
from conveyor.webhooks.follower import WebhookFanout
from conveyor.worker.backoff import TRANSIENT_ERRORS, BrokerBackoff
from conveyor.worker.dlq import DlqWorker
from conveyor.worker.metrics import WorkerMetrics
from conveyor.worker.runner import Worker
from conveyor.worker.schedules import ScheduleFirer, sync_declared

log = get_logger("conveyor.worker")

EXIT_OK = 0
EXIT_ERROR = 1
#: After the grace period, how long the stop may take at most (release, last outcomes).
FORCED_EXIT_MARGIN_S = 10.0


def _exit_now(code: int) -> None:
    """Leave at once (no atexit, no joining threads), with the logs flushed."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


class _StopTimer:
    """A daemon timer armed by the stop signal itself (a Python-level signal handler, which
    runs even while a handler blocks the event loop, unlike the loop's own callback): if
    the process still runs when it fires, nothing else could have ended it."""

    def __init__(self, grace_s: float) -> None:
        self._grace_s = grace_s
        self._timer: threading.Timer | None = None
        self._signals = 0
        self.worker_done = False

    def on_signal(self, signum: int, frame: object) -> None:
        """First signal: grace + margin; a second (no grace any more): the margin alone."""
        self._signals += 1
        if self._signals > 2:
            return
        after_s = (self._grace_s if self._signals == 1 else 0.0) + FORCED_EXIT_MARGIN_S
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(after_s, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        log.error(
            "worker_stop_timed_out",
            extra={"worker_done": self.worker_done,
                   "detail": "a handler holds the event loop: exiting without waiting;"
                             " unreleased leases expire and their jobs run again"},
        )
        _exit_now(EXIT_OK if self.worker_done else EXIT_ERROR)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def run_worker(*, queues: list[str], concurrency: int, app: str | None, settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    try:
        for queue in queues:
            validate_queue_name(queue)
        if app:
            load_app(app)
    except ConveyorError as exc:
        log.error("worker_not_started", extra={"error": exc.message, "code": str(exc.code)})
        return EXIT_ERROR
    return run_loop(_serve(queues, concurrency, settings))


def start_metrics(settings: Settings) -> WorkerMetrics | None:
    """The metrics server when `worker_metrics_port` is set (None: off). A port that cannot
    be bound is fatal: an operator asked for metrics and would otherwise scrape nothing."""
    if settings.worker_metrics_port is None:
        return None
    metrics = WorkerMetrics()
    url = metrics.serve(settings.worker_metrics_host, settings.worker_metrics_port)
    log.info("worker_metrics_served", extra={"metrics_url": url})
    return metrics


async def _serve(queues: list[str], concurrency: int, settings: Settings) -> int:
    broker = broker_from_settings(settings)
    try:
        metrics = start_metrics(settings)
    except OSError as exc:
        log.error("worker_metrics_port_unavailable",
                  extra={"error": repr(exc), "host": settings.worker_metrics_host,
                         "port": settings.worker_metrics_port})
        return EXIT_ERROR
    worker = Worker(
        broker, queues=queues, concurrency=concurrency, registry=default_registry,
        settings=settings,
        # the DLQ worker: on_dead hooks and per-type redrive policies, every maintenance tick
        maintenance_hooks=[DlqWorker(default_registry), ScheduleFirer(default_registry),
                           # webhooks: deliveries for the events of the queues served
                           WebhookFanout(settings=settings)],
        metrics=metrics,
    )
    stop_asked = asyncio.Event()
    timer = _StopTimer(settings.shutdown_grace_s)

    def on_signal() -> None:
        stop_asked.set()
        worker.stop()  # the first signal drains, a second releases running jobs at once

    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
        # The loop's wake-up fd is written by the C-level handler whatever Python-level
        # handler is set, so the loop still gets the signal; ours also arms the timer.
        signal.signal(sig, timer.on_signal)
    try:
        if not await _connect(broker, stop_asked):
            return EXIT_ERROR if not stop_asked.is_set() else EXIT_OK
        with contextlib.suppress(*TRANSIENT_ERRORS):  # the next start syncs again
            await sync_declared(broker, default_registry)
        await worker.run()
        timer.worker_done = True
        return EXIT_OK
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await broker.close()
        if metrics is not None:
            metrics.close()
        if worker.unfinished_handlers:
            # Their jobs were released or failed already; only their code still runs, and
            # Python would wait for it (threads) or hang cancelling it (tasks) before exit.
            log.warning(
                "worker_exiting_with_running_handlers",
                extra={"count": worker.unfinished_handlers},
            )
            _exit_now(EXIT_OK if timer.worker_done else EXIT_ERROR)
        timer.cancel()


async def _connect(broker: Broker, stop_asked: asyncio.Event) -> bool:
    """Connect, retrying while the broker is unreachable (it may start after us). A
    misconfigured broker is fatal: running on it could lose jobs."""
    backoff = BrokerBackoff(initial_s=0.5, max_s=10.0)
    while not stop_asked.is_set():
        try:
            await broker.connect()
            return True
        except BrokerMisconfigured as exc:
            log.error(
                "broker_misconfigured_at_start",
                extra={"error": exc.message, "details": exc.details},
            )
            return False
        except TRANSIENT_ERRORS as exc:
            delay = backoff.next_delay_s()
            log.warning(
                "broker_unavailable_at_start",
                extra={"error": repr(exc), "retry_in_s": round(delay, 3)},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_asked.wait(), delay)
    return False
