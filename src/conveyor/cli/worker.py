"""`conveyor worker`: run a worker process until it is told to stop.

The worker package is imported only when this command runs, so the other commands start fast
and do not depend on it.
"""

from __future__ import annotations

import click

from conveyor.cli.jobs import app_option
from conveyor.cli.params import DURATION, QUEUE_LIST
from conveyor.cli.runtime import load_app_modules, log_format_option, start_service, state
from conveyor.queues import DEFAULT_QUEUE


@click.command()
@click.option("--queues", "-q", type=QUEUE_LIST, default=DEFAULT_QUEUE, show_default=True,
              help="Comma-separated queues to work, e.g. emails,reports.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1),
              help="Jobs run at once [default: CONVEYOR_CONCURRENCY or 10].")
@click.option("--lease", type=DURATION,
              help="Lease per delivery, e.g. 30s [default: CONVEYOR_LEASE_S or 30s].")
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics on this port (0: any free port, shown by "
              "`conveyor workers`) [default: CONVEYOR_WORKER_METRICS_PORT, or off].")
@click.option("--metrics-host",
              help="Address the metrics port binds [default: CONVEYOR_WORKER_METRICS_HOST or "
              "127.0.0.1].")
@app_option
@log_format_option
def worker(
    queues: list[str], concurrency: int | None, lease: float | None, app: str | None,
    log_format: str | None, metrics_port: int | None, metrics_host: str | None,
) -> None:
    """Run a worker on QUEUES.

    Fetches and runs jobs until SIGTERM or Ctrl-C, then stops gracefully.
    """
    settings = state().settings(concurrency=concurrency, lease_s=lease, log_format=log_format,
                                worker_metrics_port=metrics_port,
                                worker_metrics_host=metrics_host)
    load_app_modules(app)  # here, so a module that fails to import is a usage error (exit 2)
    start_service(settings, "worker")
    from conveyor.worker import run_worker

    code = run_worker(
        queues=queues, concurrency=settings.concurrency, app=app, settings=settings
    )
    raise click.exceptions.Exit(code)
