"""A schedule's spec in words, for the dashboard and the CLI.

Cron expressions are described by cronsim's `explain()` (already a dependency: no second
library); `every_s` by its largest whole unit.
"""

from __future__ import annotations

from conveyor.schedules.cron import Cron

_UNITS = ((86400, "d"), (3600, "h"), (60, "min"))


def describe_every(every_s: float) -> str:
    """`every 30 s`, `every 5 min`, `every 2 h`, `every 1 d`, `every 1.5 s`."""
    if every_s == int(every_s):
        whole = int(every_s)
        for size, unit in _UNITS:
            if whole % size == 0:
                return f"every {whole // size} {unit}"
        return f"every {whole} s"
    return f"every {every_s:g} s"


def describe(*, cron: str | None = None, every_s: float | None = None,
             timezone: str = "UTC") -> str:
    """`At 02:30 every day (America/New_York)`; `every 30 s` (real time: no zone shown)."""
    if every_s is not None:
        return describe_every(every_s)
    if cron is None:
        raise ValueError("give cron or every_s")
    return f"{Cron(cron).explain()} ({timezone})"
