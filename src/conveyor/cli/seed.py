"""`conveyor seed`: enqueue many test jobs fast (the seed's pushTestJobs), for demos and load.

Jobs go in batches through `enqueue_many`, one round trip per batch; the first request is
validated before anything is stored, so a bad type or payload enqueues nothing.
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from conveyor.cli.jobs import app_option
from conveyor.cli.output import console, echo_json
from conveyor.cli.params import JSON, QUEUE
from conveyor.cli.runtime import json_flag, run, wants_json
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.handlers.fake import FAKE_TYPE
from conveyor.queues import DEFAULT_QUEUE


@click.command()
@click.option("--count", "-n", type=click.IntRange(min=1), required=True,
              help="How many jobs to enqueue.")
@click.option("--type", "type_", default=FAKE_TYPE, show_default=True, help="The job type.")
@click.option("--payload", type=JSON, default="{}", show_default=True,
              help="JSON payload of every job; @file reads a file.")
@click.option("--queue", "-q", type=QUEUE, default=DEFAULT_QUEUE, show_default=True,
              help="Queue to put the jobs in.")
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Jobs per round trip.")
@app_option
@json_flag
def seed(
    count: int, type_: str, payload: Any, queue: str, batch: int, app: str | None
) -> None:
    """Enqueue COUNT test jobs in batches.

    Shows a progress bar on a terminal and prints the enqueue rate at the end.
    """
    out = console()
    request = JobRequest(type_, payload, queue)

    async def action(client: AsyncConveyor) -> float:
        started = time.perf_counter()
        with Progress(
            TextColumn("enqueue"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=out, disable=not out.is_terminal or wants_json(), transient=False,
        ) as bar:
            task = bar.add_task("enqueue", total=count)
            for start in range(0, count, batch):
                n = min(batch, count - start)
                await client.enqueue_many([request] * n)
                bar.advance(task, n)
        return time.perf_counter() - started

    elapsed = run(
        action, app=app, check=lambda client: client.build_spec(request), creates=True
    )
    rate = count / elapsed if elapsed > 0 else float("inf")
    if wants_json():
        echo_json({"count": count, "queue": queue, "type": type_, "seconds": round(elapsed, 3),
                   "jobs_per_s": round(rate, 1)})
    else:
        click.echo(f"enqueued {count} {type_} job(s) to {queue} in {elapsed:.2f}s"
                   f" ({rate:,.0f} jobs/s)")
