"""`conveyor dlq list|redrive|purge`: the dead-letter queue.

`list` shows every queue's dead jobs unless `--queue` is given (like the dashboard).
Redrive and purge act on the ids given, or on a selection: `--type`, `--error-code`,
`--died-before`, `--died-after` (every queue, or `--queue`), or `--all` (the whole DLQ of
`--queue`, default `default`). A selection stops at the jobs dead when it started, so jobs
that die again meanwhile are not chased. `--dry-run` reports and changes nothing; `--rate`
paces a redrive (jobs per second); `--to` redrives into another queue as new jobs.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from conveyor.brokers.base import Page
from conveyor.cli.jobs_list import CURSOR_HELP, collect, print_jobs
from conveyor.cli.output import echo_json
from conveyor.cli.params import JOB_ID, QUEUE, ZONED_DATETIME
from conveyor.cli.runtime import EXIT_FAILURE, json_flag, run, wants_json
from conveyor.client import AsyncConveyor
from conveyor.dlq.selection import DeadSelection, dead_filter
from conveyor.dlq.tool import DlqResult
from conveyor.errors import ValidationError
from conveyor.jobs import Job, JobState
from conveyor.queues import DEFAULT_QUEUE

F = TypeVar("F", bound=Callable[..., Any])

_DONE = {"redrive": "redriven", "purge": "purged"}


def _filters(func: F) -> F:
    for option in reversed([
        click.option("--type", "type_", metavar="TYPE", help="Only jobs of this type."),
        click.option("--error-code", metavar="CODE", help="Only jobs that died with this code."),
        click.option("--died-before", type=ZONED_DATETIME,
                     help="Only jobs that died before this time (ISO 8601 with a zone)."),
        click.option("--died-after", type=ZONED_DATETIME,
                     help="Only jobs that died at or after this time."),
    ]):
        func = option(func)
    return func


def actor() -> str:
    """Who redrives, for each job's history: `cli:<login>`."""
    try:
        return f"cli:{getpass.getuser()}"[:128]
    except (KeyError, OSError):
        return "cli"


@click.group()
def dlq() -> None:
    """List, redrive or purge dead jobs."""


@dlq.command("list")
@click.option("--queue", "-q", type=QUEUE, help="Only this queue [default: every queue].")
@_filters
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--cursor", metavar="CURSOR", help=CURSOR_HELP)
@json_flag
def list_dead(
    queue: str | None, type_: str | None, error_code: str | None,
    died_before: datetime | None, died_after: datetime | None, limit: int, cursor: str | None,
) -> None:
    """List dead jobs of every queue (or --queue), newest first, like GET /v1/dlq."""
    try:
        keep = dead_filter(error_code=error_code, died_before=died_before,
                           died_after=died_after)
    except ValidationError as exc:
        raise click.UsageError(exc.message) from exc

    async def action(client: AsyncConveyor) -> tuple[list[Job], str | None]:
        async def fetch(n: int, after: str | None) -> Page:
            return await client.list_jobs(
                queue=queue, state=JobState.DEAD, type=type_, limit=n, cursor=after
            )

        return await collect(fetch, limit, cursor, keep)

    items, next_cursor = run(action)
    print_jobs(items, next_cursor, dead=True,
               empty=f"no dead jobs in queue {queue}" if queue else "no dead jobs")


def _selection(
    ids: tuple[str, ...], queue: str | None, all_: bool, type_: str | None,
    error_code: str | None, died_before: datetime | None, died_after: datetime | None,
) -> DeadSelection:
    """The selection the flags give, checked by the selection rules (`DeadSelection`: ids
    or filters, ids in `--queue`); the CLI adds its own: a whole queue takes `--all`."""
    filtered = any(v is not None for v in (type_, error_code, died_before, died_after))
    if ids and all_:
        raise click.UsageError("give job ids or --all, not both")
    if not ids and not all_ and not filtered:
        raise click.UsageError("give the job ids to act on, --all, or a filter"
                               " (--type, --error-code, --died-before, --died-after)")
    if all_ and not filtered and queue is None:
        queue = DEFAULT_QUEUE
    try:
        return DeadSelection(tuple(dict.fromkeys(ids)), queue, type_, error_code,
                             died_before=died_before, died_after=died_after)
    except ValidationError as exc:
        raise click.UsageError(exc.message) from exc


def _report(verb: str, res: DlqResult) -> None:
    """Print what was done (or would be); exit 1 when some of the ids asked for were not
    dead (or did not match)."""
    key = f"would_{verb}" if res.dry_run else _DONE[verb]
    if wants_json():
        doc: dict[str, Any] = {key: res.ids, "skipped": res.skipped, "count": res.count}
        if res.moved_to:
            doc["moved_to"] = res.moved_to
        echo_json(doc)
    else:
        for job_id in res.ids:
            click.echo(f"{job_id} -> {res.moved_to[job_id]}" if job_id in res.moved_to
                       else job_id)
        if res.count > len(res.ids):
            click.echo(f"... and {res.count - len(res.ids)} more")
        if res.dry_run:
            click.echo(f"would {verb} {res.count} job(s) (dry run: nothing changed)")
        else:
            click.echo(f"{_DONE[verb]} {res.count} job(s)")
        if res.skipped:
            click.echo(f"not in the DLQ (skipped): {' '.join(res.skipped)}", err=True)
    if res.skipped:
        raise click.exceptions.Exit(EXIT_FAILURE)


_QUEUE_HELP = ("With filters: only this queue (default: every queue). With --all: this queue"
               f" [default: {DEFAULT_QUEUE}]. With ids: check they are in it.")


@dlq.command("redrive")
@click.argument("ids", nargs=-1, type=JOB_ID)
@click.option("--queue", "-q", type=QUEUE, help=_QUEUE_HELP)
@click.option("--all", "all_", is_flag=True, help="The whole DLQ of the queue, oldest first.")
@_filters
@click.option("--limit", type=click.IntRange(min=1), help="Redrive at most N jobs.")
@click.option("--dry-run", is_flag=True, help="Report what would move; change nothing.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True, max=100_000),
              help="At most N jobs per second, so a big redrive does not flood the workers.")
@click.option("--to", "target", type=QUEUE, metavar="QUEUE",
              help="Redrive into this queue (as new jobs) instead of their own.")
@json_flag
def redrive(
    ids: tuple[str, ...], queue: str | None, all_: bool, type_: str | None,
    error_code: str | None, died_before: datetime | None, died_after: datetime | None,
    limit: int | None, dry_run: bool, rate: float | None, target: str | None,
) -> None:
    """Move dead jobs back to QUEUED (attempts start again)."""
    sel = _selection(ids, queue, all_, type_, error_code, died_before, died_after)
    who = actor()

    async def action(client: AsyncConveyor) -> DlqResult:
        return await client.redrive_dead(
            sel.ids, queue=sel.queue, type=sel.type, error_code=sel.error_code,
            died_before=sel.died_before, died_after=sel.died_after, dry_run=dry_run,
            rate=rate, target_queue=target, actor=who, limit=limit,
        )

    _report("redrive", run(action))


@dlq.command("purge")
@click.argument("ids", nargs=-1, type=JOB_ID)
@click.option("--queue", "-q", type=QUEUE, help=_QUEUE_HELP)
@click.option("--all", "all_", is_flag=True, help="Delete the whole DLQ of the queue.")
@_filters
@click.option("--limit", type=click.IntRange(min=1), help="Delete at most N jobs.")
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; delete nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before purging a selection.")
@json_flag
def purge(
    ids: tuple[str, ...], queue: str | None, all_: bool, type_: str | None,
    error_code: str | None, died_before: datetime | None, died_after: datetime | None,
    limit: int | None, dry_run: bool, yes: bool,
) -> None:
    """Delete dead jobs for good."""
    sel = _selection(ids, queue, all_, type_, error_code, died_before, died_after)
    if not sel.ids and not yes and not dry_run:
        what = f"of queue {sel.queue}" if sel.queue else "of every queue"
        which = "every dead job" if not sel.filtered else "the selected dead jobs"
        click.confirm(f"Delete {which} {what}? This cannot be undone.", abort=True, err=True)

    async def action(client: AsyncConveyor) -> DlqResult:
        return await client.purge_dead(
            sel.ids, queue=sel.queue, type=sel.type, error_code=sel.error_code,
            died_before=sel.died_before, died_after=sel.died_after, dry_run=dry_run,
            limit=limit,
        )

    _report("purge", run(action))
