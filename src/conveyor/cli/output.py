"""How commands print: JSON for scripts, rich tables and plain lines for people.

Id columns never wrap or shrink, so an id printed in a table can be pasted back into a command.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click
from pydantic_core import to_json
from rich.console import Console
from rich.table import Table

from conveyor.jobs import Job

PIPE_WIDTH = 200


def console() -> Console:
    """A console on the current stdout (looked up per call, so test runners can capture it).

    Piped output gets room for whole rows instead of rich's 80-column guess.
    """
    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(highlight=False, width=PIPE_WIDTH)
    return out


def echo_json(value: Any) -> None:
    click.echo(to_json(value, indent=2).decode())


def echo_err_json(value: Any) -> None:
    """One compact JSON line on stderr (notes and errors beside a --json result)."""
    click.echo(to_json(value, fallback=repr).decode(), err=True)


def when(dt: datetime | None) -> str:
    return "-" if dt is None else dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ago(ms: int) -> str:
    """A non-negative span in milliseconds, e.g. `850ms`, `12s`, `3m04s`."""
    ms = max(ms, 0)
    if ms < 1000:
        return f"{ms}ms"
    s = ms // 1000
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def id_column(table: Table, header: str, ids: Sequence[str]) -> None:
    width = max([len(header), *(len(i) for i in ids)])
    table.add_column(header, no_wrap=True, min_width=width)


def job_line(job: Job) -> str:
    if job.cancel_requested:  # a running job asked to stop: it ends cancelled once stopped
        return f"{job.id} {job.state} cancel-requested"
    return f"{job.id} {job.state}"


def print_job(job: Job, *, tracebacks: bool = False) -> None:
    """Every field of one job, then its attempt history (and each attempt's traceback)."""
    fields: list[tuple[str, Any]] = [
        ("id", job.id), ("type", job.type), ("queue", job.queue), ("state", job.state),
        ("priority", job.priority), ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("timeout", "-" if job.timeout_s is None else f"{job.timeout_s:g}s"),
        ("created", when(job.created_at)), ("run at", when(job.run_at)),
        ("started", when(job.started_at)), ("finished", when(job.finished_at)),
        ("idempotency key", job.idempotency_key or "-"),
        ("payload", to_json(job.payload).decode()),
        ("result", to_json(job.result).decode()),
        ("last error", f"{job.last_error.code}: {job.last_error.message}"
         if job.last_error else "-"),
    ]
    if job.worker:
        fields.insert(4, ("worker", job.worker))
    if job.cancel_requested:
        fields.insert(4, ("cancel", f"requested by {job.cancel_requested_by or '?'}"))
    for name, value in fields:
        click.echo(f"{name + ':':<17}{value}")
    if not job.history:
        return
    table = Table(title="history", title_justify="left")
    for header in ("#", "outcome", "worker", "started", "finished", "error"):
        table.add_column(header, no_wrap=header != "error")
    for a in job.history:
        error = f"{a.error_code}: {a.message}" if a.error_code else (a.message or "")
        table.add_row(str(a.attempt), a.outcome, a.worker or "-", when(a.started_at),
                      when(a.finished_at), error)
    console().print(table)
    with_tb = [a for a in job.history if a.traceback]
    if with_tb and not tracebacks:
        click.echo(f"({len(with_tb)} traceback(s): add --traceback to show them)")
    for a in with_tb if tracebacks else []:
        click.echo(f"\ntraceback of attempt {a.attempt} ({a.outcome}):")
        click.echo(str(a.traceback).rstrip("\n"))
