"""`conveyor dlq list|redrive|purge`: the dead-letter queue of one queue.

Redrive and purge act either on the ids given or, with `--all`, on the whole DLQ in batches.
`--all` stops after as many jobs as the DLQ held when it started, so jobs that die again
while it runs are not chased forever.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

import click
from rich.table import Table

from conveyor.brokers.base import Page
from conveyor.cli.output import console, echo_json, id_column, when
from conveyor.cli.params import JOB_ID, QUEUE
from conveyor.cli.runtime import EXIT_FAILURE, json_flag, run, wants_json
from conveyor.client import AsyncConveyor
from conveyor.ids import split_job_id
from conveyor.jobs import JobState
from conveyor.queues import DEFAULT_QUEUE

BATCH = 1000

#: (client, queue, ids or None for "oldest first", limit) -> ids acted on
BulkAction = Callable[[AsyncConveyor, str, Sequence[str] | None, int], Awaitable[list[str]]]


@click.group()
def dlq() -> None:
    """List, redrive or purge dead jobs."""


@dlq.command("list")
@click.option("--queue", "-q", type=QUEUE, default=DEFAULT_QUEUE, show_default=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_flag
def list_dead(queue: str, limit: int) -> None:
    """List dead jobs, most recently dead first."""

    async def action(client: AsyncConveyor) -> Page:
        return await client.dlq_list(queue, limit)

    page = run(action)
    if wants_json():
        echo_json({"items": page.items, "next_cursor": page.next_cursor})
        return
    if not page.items:
        click.echo(f"no dead jobs in queue {queue}")
        return
    table = Table()
    id_column(table, "id", [j.id for j in page.items])
    for header in ("type", "attempts", "died", "last error"):
        table.add_column(header, no_wrap=header != "last error")
    for j in page.items:
        error = f"{j.last_error.code}: {j.last_error.message}" if j.last_error else "-"
        table.add_row(j.id, j.type, f"{j.attempts}/{j.max_attempts}", when(j.finished_at), error)
    console().print(table)


def _targets(queue: str | None, ids: tuple[str, ...], all_: bool) -> dict[str, list[str]] | str:
    """The ids grouped by queue, or the one queue whose whole DLQ `--all` means."""
    if ids and all_:
        raise click.UsageError("give job ids or --all, not both")
    if not ids and not all_:
        raise click.UsageError("give the job ids to act on, or --all")
    if all_:
        return queue or DEFAULT_QUEUE
    groups: dict[str, list[str]] = defaultdict(list)
    for job_id in dict.fromkeys(ids):
        own = split_job_id(job_id)[0]
        if queue is not None and own != queue:
            raise click.BadParameter(f"job {job_id} is not in queue {queue}", param_hint="IDS")
        groups[own].append(job_id)
    return dict(groups)


def _bulk(
    targets: dict[str, list[str]] | str, act: BulkAction, limit: int | None
) -> list[str]:
    async def action(client: AsyncConveyor) -> list[str]:
        if not isinstance(targets, str):
            done: list[str] = []
            for queue, ids in targets.items():
                done += await act(client, queue, ids, len(ids))
            return done
        queue = targets
        dead = (await client.stats([queue]))[queue][JobState.DEAD]
        budget = dead if limit is None else min(limit, dead)
        done = []
        while len(done) < budget:
            batch = await act(client, queue, None, min(BATCH, budget - len(done)))
            done += batch
            if not batch:
                break
        return done

    return run(action)


def _report(verb: str, done: list[str], asked: tuple[str, ...]) -> None:
    """Print what was done; exit 1 when some of the ids asked for were not dead."""
    acted = set(done)
    skipped = [i for i in dict.fromkeys(asked) if i not in acted]
    if wants_json():
        echo_json({verb: done, "skipped": skipped})
    else:
        for job_id in done:
            click.echo(job_id)
        click.echo(f"{verb} {len(done)} job(s)")
        if skipped:
            click.echo(f"not in the DLQ (skipped): {' '.join(skipped)}", err=True)
    if skipped:
        raise click.exceptions.Exit(EXIT_FAILURE)


async def _redrive(c: AsyncConveyor, q: str, ids: Sequence[str] | None, limit: int) -> list[str]:
    return await c.dlq_redrive(q, ids, limit)


async def _purge(c: AsyncConveyor, q: str, ids: Sequence[str] | None, limit: int) -> list[str]:
    return await c.dlq_purge(q, ids, limit)


@dlq.command("redrive")
@click.argument("ids", nargs=-1, type=JOB_ID)
@click.option("--queue", "-q", type=QUEUE, help=f"The queue for --all [default: {DEFAULT_QUEUE}].")
@click.option("--all", "all_", is_flag=True,
              help="Redrive the whole DLQ of the queue, oldest first.")
@click.option("--limit", type=click.IntRange(min=1), help="With --all: redrive at most N jobs.")
@json_flag
def redrive(ids: tuple[str, ...], queue: str | None, all_: bool, limit: int | None) -> None:
    """Move dead jobs back to QUEUED (attempts start again)."""
    done = _bulk(_targets(queue, ids, all_), _redrive, limit)
    _report("redriven", done, ids)


@dlq.command("purge")
@click.argument("ids", nargs=-1, type=JOB_ID)
@click.option("--queue", "-q", type=QUEUE, help=f"The queue for --all [default: {DEFAULT_QUEUE}].")
@click.option("--all", "all_", is_flag=True, help="Delete the whole DLQ of the queue.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before purging with --all.")
@json_flag
def purge(ids: tuple[str, ...], queue: str | None, all_: bool, yes: bool) -> None:
    """Delete dead jobs for good."""
    targets = _targets(queue, ids, all_)
    if isinstance(targets, str) and not yes:
        click.confirm(
            f"Delete every dead job of queue {targets}? This cannot be undone.", abort=True,
            err=True,
        )
    done = _bulk(targets, _purge, None)
    _report("purged", done, ids)
