"""`conveyor schedule set|list|show|delete|pause|resume|trigger|runs|preview`: recurring jobs
(issue 15) from the command line, over the same client calls as the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.table import Table

from conveyor.cli.jobs import app_option, show
from conveyor.cli.output import console, echo_json, id_column, job_line, when
from conveyor.cli.params import DURATION, JSON, QUEUE, ZONED_DATETIME
from conveyor.cli.runtime import json_flag, run, wants_json
from conveyor.client import AsyncConveyor
from conveyor.jobs import MAX_ATTEMPTS_LIMIT, Job
from conveyor.queues import DEFAULT_QUEUE, PRIORITY_MAX, PRIORITY_MIN
from conveyor.schedules.service import SchedulePage, ScheduleView
from conveyor.schedules.spec import PreviewRequest, Schedule, error_details
from conveyor.schedules.store import LIST_MAX

NAME = QUEUE  # schedule names follow the queue-name rules


def _spec(cron: str | None, every: float | None) -> dict[str, Any]:
    if (cron is None) == (every is None):
        raise click.UsageError("give exactly one of --cron and --every")
    return {"cron": cron} if cron is not None else {"every_s": every}


def _print(view: ScheduleView) -> None:
    if wants_json():
        echo_json(view)
        return
    counts = view.counts
    last = view.last_run
    lines = [
        ("name", view.name),
        ("spec", f"{view.cron if view.cron is not None else f'every {view.every_s:g}s'}"
                 f"  ({view.description})"),
        ("timezone", view.timezone),
        ("job", f"{view.job.type} -> queue {view.job.queue} (priority {view.job.priority})"),
        ("paused", "yes" if view.paused else "no"),
        ("overlap", view.overlap),
        ("catch-up", view.catch_up + (f" (at most {view.max_catch_up})"
                                      if view.catch_up == "all" else "")),
        ("next runs", ", ".join(when(t) for t in view.next_runs) or "-"),
        ("last run", "-" if last is None else
         f"{last.job_id} tick {when(last.tick) if last.tick else 'manual'}"
         f" {last.state or 'gone'}"),
        ("counts", f"fired {counts.fired}, skipped {counts.skipped}, missed {counts.missed}"),
        ("window", f"{when(view.start_at)} .. {when(view.end_at)}"),
        ("created", when(view.created_at)),
        ("updated", when(view.updated_at)),
    ]
    for key, value in lines:
        click.echo(f"{key + ':':<11} {value}")


@click.group()
def schedule() -> None:
    """Recurring jobs: set, list, show, pause, resume, trigger, delete, preview."""


@schedule.command("set")
@click.argument("name", type=NAME)
@click.option("--cron", metavar="EXPR", help="5 fields (6 with seconds first) or @hourly ...")
@click.option("--every", type=DURATION, help="A period instead of a cron, e.g. 30s, 5m, 1h.")
@click.option("--type", "type_", required=True, help="Job type each tick enqueues.")
@click.option("--payload", type=JSON, default="{}", show_default=True,
              help="JSON payload; @file reads a file, @- reads stdin.")
@click.option("--queue", "-q", type=QUEUE, default=DEFAULT_QUEUE, show_default=True)
@click.option("--timezone", "--tz", "timezone", default="UTC", show_default=True,
              help="IANA zone the cron reads wall time in.")
@click.option("--overlap", type=click.Choice(["allow", "skip"]), default="allow",
              show_default=True, help="skip: no job while the previous one is still live.")
@click.option("--catch-up", type=click.Choice(["none", "latest", "all"]), default="latest",
              show_default=True, help="Ticks missed while no worker ran.")
@click.option("--max-catch-up", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--priority", type=click.IntRange(PRIORITY_MIN, PRIORITY_MAX), default=0,
              show_default=True)
@click.option("--max-attempts", type=click.IntRange(1, MAX_ATTEMPTS_LIMIT),
              help="[default: the type's]")
@click.option("--timeout", type=DURATION, help="Per-attempt limit [default: the type's].")
@click.option("--start-at", type=ZONED_DATETIME, help="First instant a tick may be at.")
@click.option("--end-at", type=ZONED_DATETIME, help="Ticks strictly before this instant.")
@click.option("--paused", is_flag=True, help="Save it paused.")
@app_option
@json_flag
def set_schedule(
    name: str, cron: str | None, every: float | None, type_: str, payload: Any, queue: str,
    timezone: str, overlap: str, catch_up: str, max_catch_up: int, priority: int,
    max_attempts: int | None, timeout: float | None, start_at: datetime | None,
    end_at: datetime | None, paused: bool, app: str | None,
) -> None:
    """Create or replace schedule NAME (an identical definition changes nothing)."""
    job: dict[str, Any] = {"type": type_, "payload": payload, "queue": queue,
                           "priority": priority}
    if max_attempts is not None:
        job["max_attempts"] = max_attempts
    if timeout is not None:
        job["timeout_s"] = timeout
    data: dict[str, Any] = {"name": name, **_spec(cron, every), "timezone": timezone,
                            "job": job, "overlap": overlap, "catch_up": catch_up,
                            "max_catch_up": max_catch_up, "paused": paused}
    if start_at is not None:
        data["start_at"] = start_at
    if end_at is not None:
        data["end_at"] = end_at
    definition = Schedule.parse(data)

    async def action(client: AsyncConveyor) -> tuple[ScheduleView, str]:
        res = await client.schedules.put(definition)
        return res.schedule, ("created" if res.created else
                              "replaced" if res.changed else "unchanged")

    view, outcome = run(action, app=app, check=lambda c: c.schedules.resolve(definition),
                        creates=True)
    if not wants_json():
        click.echo(f"{outcome} schedule {name}")
    _print(view)


@schedule.command("list")
@click.option("--limit", type=click.IntRange(1, LIST_MAX), default=50, show_default=True)
@click.option("--cursor", type=NAME, help="next_cursor of the previous page.")
@json_flag
def list_schedules(limit: int, cursor: str | None) -> None:
    """List schedules by name: spec, zone, next run, last run, counts."""

    async def action(client: AsyncConveyor) -> SchedulePage:
        return await client.schedules.list(limit, cursor)

    page = run(action)
    if wants_json():
        echo_json(page)
        return
    if not page.items:
        click.echo("no schedules")
        return
    table = Table()
    id_column(table, "name", [s.name for s in page.items])
    for header in ("spec", "zone", "queue", "next run", "last run", "fired/skip/miss",
                   "paused"):
        table.add_column(header)
    for s in page.items:
        last = s.last_run
        table.add_row(
            s.name, s.description, s.timezone, s.job.queue,
            when(s.next_runs[0]) if s.next_runs else "-",
            "-" if last is None else str(last.state or "gone"),
            f"{s.counts.fired}/{s.counts.skipped}/{s.counts.missed}",
            "yes" if s.paused else "no")
    console().print(table)
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}", err=True)


@schedule.command("show")
@click.argument("name", type=NAME)
@json_flag
def show_schedule(name: str) -> None:
    """Show one schedule: definition, next runs, last run, counts."""

    async def action(client: AsyncConveyor) -> ScheduleView:
        return await client.schedules.get(name)

    _print(run(action))


@schedule.command("delete")
@click.argument("name", type=NAME)
@json_flag
def delete_schedule(name: str) -> None:
    """Delete schedule NAME (the jobs it made stay)."""

    async def action(client: AsyncConveyor) -> None:
        await client.schedules.delete(name)

    run(action)
    if wants_json():
        echo_json({"schedule": name, "deleted": True})
    else:
        click.echo(f"deleted schedule {name}")


@schedule.command("pause")
@click.argument("name", type=NAME)
@json_flag
def pause_schedule(name: str) -> None:
    """Stop the ticks of NAME."""

    async def action(client: AsyncConveyor) -> ScheduleView:
        return await client.schedules.pause(name)

    _print(run(action))


@schedule.command("resume")
@click.argument("name", type=NAME)
@json_flag
def resume_schedule(name: str) -> None:
    """Restart the ticks of NAME, counted from now."""

    async def action(client: AsyncConveyor) -> ScheduleView:
        return await client.schedules.resume(name)

    _print(run(action))


@schedule.command("trigger")
@click.argument("name", type=NAME)
@json_flag
def trigger_schedule(name: str) -> None:
    """Enqueue the job of NAME now, outside its ticks; print the job."""

    async def action(client: AsyncConveyor) -> Job:
        return await client.schedules.trigger(name)

    show(run(action))


@schedule.command("runs")
@click.argument("name", type=NAME)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--cursor", help="next_cursor of the previous page.")
@json_flag
def schedule_runs(name: str, limit: int, cursor: str | None) -> None:
    """The jobs NAME made, newest first."""

    async def action(client: AsyncConveyor) -> Any:
        return await client.schedules.runs(name, limit, cursor)

    page = run(action)
    if wants_json():
        echo_json({"items": page.items, "next_cursor": page.next_cursor})
        return
    for j in page.items:
        tick = j.schedule.tick if j.schedule is not None else None
        click.echo(f"{job_line(j)}  tick {when(tick) if tick else 'manual'}")
    if not page.items:
        click.echo("no runs")
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}", err=True)


@schedule.command("preview")
@click.option("--cron", metavar="EXPR")
@click.option("--every", type=DURATION)
@click.option("--timezone", "--tz", "timezone", default="UTC", show_default=True)
@click.option("--after", type=ZONED_DATETIME, help="[default: now]")
@click.option("--count", type=click.IntRange(1, 100), default=5, show_default=True)
@json_flag
def preview_schedule(cron: str | None, every: float | None, timezone: str,
                     after: datetime | None, count: int) -> None:
    """Print the next ticks of a spec (UTC), without saving anything."""
    import pydantic

    from conveyor.errors import ValidationError

    data: dict[str, Any] = {**_spec(cron, every), "timezone": timezone, "count": count}
    if after is not None:
        data["after"] = after
    try:
        req = PreviewRequest.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError("invalid preview", details=error_details(exc)) from None

    async def action(client: AsyncConveyor) -> list[datetime]:
        return await client.schedules.preview(req)

    runs = run(action)
    if wants_json():
        echo_json({"runs": runs})
        return
    for t in runs:
        click.echo(when(t))
