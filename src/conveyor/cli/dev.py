"""`conveyor dev`: API + worker + maintenance in one process (see conveyor.devserver)."""

from __future__ import annotations

import sys

import click

from conveyor.cli.jobs import app_option
from conveyor.cli.params import QUEUE_LIST
from conveyor.cli.runtime import load_app_modules, log_format_option, start_service, state


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="TCP port of the API.")
@click.option("--queues", "queues", type=QUEUE_LIST, default="default", show_default=True,
              help="Comma-separated queues the worker takes jobs from, in priority order.")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Jobs the worker runs at once.")
@app_option
@log_format_option
def dev(
    host: str, port: int, queues: list[str], concurrency: int, app: str | None,
    log_format: str | None,
) -> None:
    """Run the API and a worker in one process (embedded SQLite broker by default)."""
    settings = state().settings(log_format=log_format)
    load_app_modules(app)
    try:
        from conveyor.devserver import serve_dev
    except ImportError as exc:
        raise click.UsageError(
            f"conveyor dev needs the api extra (pip install 'conveyor[api]'): {exc}"
        ) from exc
    from conveyor.runloop import run_loop

    start_service(settings, "dev")
    code = run_loop(serve_dev(
        settings, host=host, port=port, queues=queues, concurrency=concurrency,
        announce=lambda text: click.echo(text, err=True),
    ))
    sys.exit(code)
