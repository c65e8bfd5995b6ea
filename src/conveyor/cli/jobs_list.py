"""`conveyor jobs list`: jobs newest first, by queue, state and type, like `GET /v1/jobs`; and
the page-filling loop `dlq list` shares.

A broker page may be short while more follow (its scan per call is bounded), so a command
reads pages until it has `--limit` items, the end, or `MAX_PAGES` pages; the cursor it
prints then continues exactly after the last job read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import click
from rich.table import Table

from conveyor.brokers.base import Page
from conveyor.cli.output import console, echo_json, id_column, when
from conveyor.cli.params import QUEUE
from conveyor.cli.runtime import json_flag, notice, run, wants_json
from conveyor.client import AsyncConveyor
from conveyor.jobs import Job, JobState

#: broker calls one listing makes at most (each one a bounded scan)
MAX_PAGES = 20
#: with a filter applied here, matches can be rare: more calls before handing back a cursor
MAX_FILTERED_PAGES = 50

Fetch = Callable[[int, str | None], Awaitable[Page]]

CURSOR_HELP = "Continue after the last job of a previous listing (its next cursor)."


async def collect(
    fetch: Fetch, limit: int, cursor: str | None, keep: Callable[[Job], bool] | None = None,
) -> tuple[list[Job], str | None]:
    """Up to `limit` jobs (that `keep` accepts) and the cursor after the last page read.

    Each call asks for exactly the number still missing, so no page holds more matches than
    are shown and the cursor continues right after the last job read: nothing is skipped.
    """
    found: list[Job] = []
    for _ in range(MAX_PAGES if keep is None else MAX_FILTERED_PAGES):
        page = await fetch(limit - len(found), cursor)
        found += page.items if keep is None else [j for j in page.items if keep(j)]
        cursor = page.next_cursor
        if len(found) >= limit or cursor is None:
            break
    return found, cursor


def print_jobs(items: list[Job], cursor: str | None, *, empty: str, dead: bool = False) -> None:
    """A table of jobs (JSON `{"items", "next_cursor"}` with --json); the next cursor, if
    any, on stderr."""
    if wants_json():
        echo_json({"items": items, "next_cursor": cursor})
        return
    if not items:
        click.echo(empty)
    else:
        table = Table()
        id_column(table, "id", [j.id for j in items])
        headers = ("type", "attempts", "died", "last error") if dead else (
            "type", "state", "attempts", "created", "last error")
        for header in headers:
            table.add_column(header, no_wrap=header != "last error")
        for j in items:
            error = f"{j.last_error.code}: {j.last_error.message}" if j.last_error else "-"
            tried = f"{j.attempts}/{j.max_attempts}"
            row = ((j.type, tried, when(j.finished_at), error) if dead else
                   (j.type, str(j.state), tried, when(j.created_at), error))
            table.add_row(j.id, *row)
        console().print(table)
    if cursor is not None:
        notice("note", f"more jobs may follow: add --cursor {cursor}")


@click.group()
def jobs() -> None:
    """List jobs."""


@jobs.command("list")
@click.option("--queue", "-q", type=QUEUE, help="Only this queue [default: every queue].")
@click.option("--state", type=click.Choice([str(s) for s in JobState]),
              help="Only jobs in this state.")
@click.option("--type", "type_", metavar="TYPE", help="Only jobs of this type.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--cursor", metavar="CURSOR", help=CURSOR_HELP)
@json_flag
def list_jobs(
    queue: str | None, state: str | None, type_: str | None, limit: int, cursor: str | None
) -> None:
    """List jobs, newest first (like GET /v1/jobs and the dashboard)."""

    async def action(client: AsyncConveyor) -> tuple[list[Job], str | None]:
        async def fetch(n: int, after: str | None) -> Page:
            return await client.list_jobs(
                queue=queue, state=JobState(state) if state else None, type=type_, limit=n,
                cursor=after,
            )

        return await collect(fetch, limit, cursor)

    items, next_cursor = run(action)
    where = f" in queue {queue}" if queue else ""
    print_jobs(items, next_cursor, empty=f"no jobs{where} match")
