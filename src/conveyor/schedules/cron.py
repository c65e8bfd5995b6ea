"""Cron expressions over naive local wall times, parsed and matched by `cronsim`.

Only calendar arithmetic happens here: every datetime is naive (a wall-clock reading, no
zone). `wall.py` maps wall times to instants with the DST rules of docs/decisions.md, so
cronsim's own (Debian cron) DST quirks never apply: it only sees naive datetimes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

from cronsim import CronSim, CronSimError

CRON_MAX_LEN = 200

#: the `@` shorthands, as 5-field expressions
ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_ONE_S = timedelta(seconds=1)
_ORIGIN = datetime(2000, 1, 1)  # where "does it ever fire?" is asked: fixed, not "now"


class CronError(ValueError):
    """The text is not a cron expression Conveyor accepts; the message says why."""


def normalize(text: str) -> str:
    """One space between fields; `@` shorthands in lower case. Meaning is unchanged."""
    fields = text.split()
    if len(fields) == 1 and fields[0].startswith("@"):
        return fields[0].lower()
    return " ".join(fields)


class Cron:
    """A parsed expression: 5 fields, or 6 with seconds first, or an `@` shorthand."""

    __slots__ = ("_sim", "expr", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not 0 < len(text) <= CRON_MAX_LEN:
            raise CronError(f"a cron expression is 1-{CRON_MAX_LEN} characters")
        self.text = normalize(text)
        if self.text.startswith("@"):
            if self.text not in ALIASES:
                raise CronError(
                    f"unknown shorthand {self.text!r}; use one of {', '.join(ALIASES)}"
                )
            self.expr = ALIASES[self.text]
        else:
            self.expr = self.text
        nfields = len(self.expr.split())
        if nfields not in (5, 6):
            raise CronError(
                f"a cron expression has 5 fields (minute hour day month weekday) or 6 with "
                f"seconds first, not {nfields}"
            )
        try:
            self._sim = CronSim(self.expr, _ORIGIN)
        except CronSimError as exc:
            raise CronError(f"{exc} in {self.text!r}") from exc
        if self.next_after(_ORIGIN) is None:
            raise CronError(f"{self.text!r} matches no date")

    def __repr__(self) -> str:
        return f"Cron({self.text!r})"

    # --- iteration over wall times --------------------------------------------------------
    def iter_after(self, wall: datetime) -> Iterator[datetime]:
        """Matching wall times strictly after `wall`, ascending (ends after 50 years with
        no match, cronsim's bound)."""
        return CronSim(self.expr, wall.replace(microsecond=0))

    def iter_at_or_before(self, wall: datetime) -> Iterator[datetime]:
        """Matching wall times at or before `wall`, descending."""
        return CronSim(self.expr, wall.replace(microsecond=0) + _ONE_S, reverse=True)

    def next_after(self, wall: datetime) -> datetime | None:
        return next(self.iter_after(wall), None)

    def prev_at_or_before(self, wall: datetime) -> datetime | None:
        return next(self.iter_at_or_before(wall), None)

    # --- counting without iterating -------------------------------------------------------
    def count(self, lo: datetime, hi: datetime) -> int:
        """How many wall times in (lo, hi] match, in O(days) rather than O(matches)."""
        start, stop = lo.replace(microsecond=0) + _ONE_S, hi.replace(microsecond=0) + _ONE_S
        if stop <= start:
            return 0
        sim = self._sim
        per_day = len(sim.hours) * len(sim.minutes) * len(sim.seconds)
        total = 0
        day: date = start.date()
        last: date = stop.date()
        while day <= last:
            if day.month in sim.months and sim.match_day(day):
                upper = self._before(stop) if day == last else per_day
                lower = self._before(start) if day == start.date() else 0
                total += upper - lower
            day += timedelta(days=1)
        return total

    def _before(self, t: datetime) -> int:
        """Matching times of day strictly before t's time of day."""
        sim = self._sim
        n = sum(1 for h in sim.hours if h < t.hour) * len(sim.minutes) * len(sim.seconds)
        if t.hour in sim.hours:
            n += sum(1 for m in sim.minutes if m < t.minute) * len(sim.seconds)
            if t.minute in sim.minutes:
                n += sum(1 for s in sim.seconds if s < t.second)
        return n

    def explain(self) -> str:
        """cronsim's English description ("At 02:30 every day")."""
        return self._sim.explain()
