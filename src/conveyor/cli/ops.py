"""`conveyor stats`, `conveyor workers` and `conveyor queue pause|resume|delete`: the view of
the whole system an operator checks first.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict

import click
from rich.table import Table

from conveyor.brokers.base import WorkerInfo
from conveyor.cli.output import ago, console, echo_json, id_column
from conveyor.cli.params import QUEUE
from conveyor.cli.runtime import json_flag, notice, run, wants_json
from conveyor.client import AsyncConveyor
from conveyor.jobs import JobState


@click.command()
@click.option("--queue", "-q", "queues", type=QUEUE, multiple=True,
              help="Only this queue (repeatable) [default: every known queue].")
@json_flag
def stats(queues: tuple[str, ...]) -> None:
    """Count the jobs in each state of each queue."""

    async def action(client: AsyncConveyor) -> dict[str, dict[str, int]]:
        return await client.stats(list(dict.fromkeys(queues)) or None)

    counts = run(action)
    if wants_json():
        echo_json(counts)
        return
    if not counts:
        click.echo("no queues yet")
        return
    table = Table()
    id_column(table, "queue", list(counts))
    for state in JobState:
        table.add_column(str(state), justify="right", no_wrap=True, min_width=len(state))
    table.add_column("total", justify="right", no_wrap=True, min_width=5)
    for queue, by_state in sorted(counts.items()):
        row = [by_state.get(str(s), 0) for s in JobState]
        table.add_row(queue, *(str(n) for n in row), str(sum(row)))
    console().print(table)


@click.command()
@json_flag
def workers() -> None:
    """List live workers.

    Shows id, host, pid, queues, jobs in hand (of its concurrency) and when last seen.
    """

    async def action(client: AsyncConveyor) -> tuple[list[WorkerInfo], int]:
        return await client.workers(), await client.broker.now_ms()

    found, now_ms = run(action)
    if wants_json():
        echo_json([asdict(w) for w in found])
        return
    if not found:
        click.echo("no live workers")
        return
    table = Table()
    id_column(table, "id", [w.id for w in found])
    for header in ("host", "pid", "queues", "jobs", "last seen"):
        table.add_column(header, justify="right" if header in ("pid", "jobs") else "left")
    metrics = any(w.metrics_url for w in found)
    if metrics:
        table.add_column("metrics")
    for w in sorted(found, key=lambda w: w.id):
        table.add_row(w.id, w.host, str(w.pid), ",".join(w.queues),
                      f"{len(w.jobs)}/{w.concurrency}", f"{ago(now_ms - w.last_seen_ms)} ago",
                      *([w.metrics_url or ""] if metrics else []))
    console().print(table)


@click.group()
def queue() -> None:
    """Pause, resume or delete a queue.

    A paused queue still accepts jobs; workers just stop fetching from it.
    """


@queue.command("pause")
@click.argument("name", metavar="QUEUE", type=QUEUE)
@json_flag
def pause(name: str) -> None:
    """Stop workers fetching from QUEUE.

    Running jobs finish; new jobs are still accepted.
    """

    async def action(client: AsyncConveyor) -> list[str]:
        known = await client.broker.queues()  # before pausing, which may make it known
        await client.pause(name)
        return known

    known = run(action)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        notice("warning", f"queue {name} is unknown: no job was ever enqueued to it (paused"
               f" anyway: workers will not take the jobs it gets){hint}", queue=name,
               similar=close)
    _done(name, paused=True)


@queue.command("resume")
@click.argument("name", metavar="QUEUE", type=QUEUE)
@json_flag
def resume(name: str) -> None:
    """Let workers fetch from QUEUE again."""

    async def action(client: AsyncConveyor) -> None:
        await client.resume(name)

    run(action)
    _done(name, paused=False)


@queue.command("delete")
@click.argument("name", metavar="QUEUE", type=QUEUE)
@json_flag
def delete(name: str) -> None:
    """Forget QUEUE, which must hold no job at all (any state).

    It leaves `conveyor stats` and the queue lists; its next job brings it back.
    """

    async def action(client: AsyncConveyor) -> None:
        await client.delete_queue(name)

    run(action)
    if wants_json():
        echo_json({"queue": name, "deleted": True})
    else:
        click.echo(f"deleted queue {name}")


def _done(name: str, *, paused: bool) -> None:
    if wants_json():
        echo_json({"queue": name, "paused": paused})
    else:
        click.echo(f"{'paused' if paused else 'resumed'} queue {name}")
