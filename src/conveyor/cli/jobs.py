"""`conveyor enqueue` and `conveyor job show|retry|cancel`: one job at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from conveyor.cli.output import echo_json, job_line, print_job
from conveyor.cli.params import DURATION, JOB_ID, JSON, QUEUE, ZONED_DATETIME
from conveyor.cli.runtime import json_flag, notice, run, wants_json
from conveyor.client import AsyncConveyor, JobRequest
from conveyor.jobs import MAX_ATTEMPTS_LIMIT, Job
from conveyor.queues import DEFAULT_QUEUE, PRIORITY_MAX, PRIORITY_MIN

APP_HELP = "Comma-separated modules to import so their job types register (env CONVEYOR_APP)."


def app_option(func: Any) -> Any:
    return click.option("--app", envvar="CONVEYOR_APP", metavar="MODULES", help=APP_HELP)(func)


def show(job: Job, *, detail: bool = False, tracebacks: bool = False) -> None:
    if wants_json():
        echo_json(job)
    elif detail:
        print_job(job, tracebacks=tracebacks)
    else:
        click.echo(job_line(job))


@click.command()
@click.argument("type")
@click.option("--payload", type=JSON, default="{}", show_default=True,
              help="JSON payload; @file reads a file, @- reads stdin.")
@click.option("--queue", "-q", type=QUEUE, default=DEFAULT_QUEUE, show_default=True,
              help="Queue to put the job in.")
@click.option("--delay", type=DURATION, help="Run after this long, e.g. 30s, 5m, 2h.")
@click.option("--run-at", type=ZONED_DATETIME, help="Run at this ISO 8601 time (with a zone).")
@click.option("--priority", type=click.IntRange(PRIORITY_MIN, PRIORITY_MAX), default=0,
              show_default=True, help="Higher runs first.")
@click.option("--max-attempts", type=click.IntRange(1, MAX_ATTEMPTS_LIMIT),
              help="Deliveries before DEAD [default: the type's].")
@click.option("--timeout", type=DURATION, help="Per-attempt time limit [default: the type's].")
@click.option("--idempotency-key", help="Enqueue at most one live job for this key.")
@click.option("--limit-key", help="Flow control: the tenant / customer its queue's per-key "
              "limits apply to.")
@app_option
@json_flag
def enqueue(
    type: str, payload: Any, queue: str, delay: float | None, run_at: datetime | None,
    priority: int, max_attempts: int | None, timeout: float | None,
    idempotency_key: str | None, limit_key: str | None, app: str | None,
) -> None:
    """Enqueue one job of TYPE; print its id and state."""

    request = JobRequest(
        type, payload, queue, priority, delay, run_at, max_attempts, timeout, idempotency_key,
        limit_key,
    )

    async def action(client: AsyncConveyor) -> tuple[Job, bool]:
        return await client.enqueue_job(request)

    enqueued, created = run(
        action, app=app, check=lambda client: client.build_spec(request), creates=True
    )
    if not created:
        notice("note", f"idempotency key {idempotency_key!r} already names this job",
               job_id=enqueued.id)
    show(enqueued)


@click.group()
def job() -> None:
    """Inspect, retry or cancel one job by id."""


@job.command("show")
@click.argument("job_id", metavar="ID", type=JOB_ID)
@click.option("--traceback", "tracebacks", is_flag=True,
              help="Print the traceback of each failed attempt (JSON always has them).")
@json_flag
def show_job(job_id: str, tracebacks: bool) -> None:
    """Show a job: state, payload, result, last error and attempt history."""

    async def action(client: AsyncConveyor) -> Job:
        return await client.get(job_id)

    show(run(action), detail=True, tracebacks=tracebacks)


@job.command("retry")
@click.argument("job_id", metavar="ID", type=JOB_ID)
@json_flag
def retry_job(job_id: str) -> None:
    """Put a DEAD or CANCELLED job back in its queue."""

    async def action(client: AsyncConveyor) -> Job:
        return await client.retry(job_id, actor="cli")

    show(run(action))


@job.command("cancel")
@click.argument("job_id", metavar="ID", type=JOB_ID)
@json_flag
def cancel_job(job_id: str) -> None:
    """Cancel a SCHEDULED or QUEUED job; ask the worker of a RUNNING one to stop it (it ends
    CANCELLED once stopped)."""

    async def action(client: AsyncConveyor) -> Job:
        return await client.cancel(job_id, actor="cli")

    show(run(action))
