"""A brute-force reference for the tick generator, sharing none of its code.

Cron fields are drawn as sets (and rendered as cron text for the code under test), so the
reference matches wall times against the sets without any cron parser. Ticks come from
walking real time one step at a time through zoneinfo and applying the DST rules directly:
at each instant, every matching wall time the clock shows for the first time (later than
anything it showed before) fires, once, at that instant. So a time skipped by a forward jump
fires right after the jump, a repeated time fires at its first occurrence, and the skipped
times of one jump fire together once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from conveyor.schedules.zones import load_zone

ZONES = [
    "UTC", "America/New_York", "Europe/Dublin", "Australia/Lord_Howe", "Asia/Kolkata",
    "Pacific/Chatham", "America/Santiago", "Europe/London", "Europe/Berlin",
    "Australia/Sydney", "America/Sao_Paulo", "Asia/Tehran", "Africa/Casablanca",
    "America/St_Johns", "Pacific/Apia", "America/Havana",
]

RANGES = {
    "second": (0, 59), "minute": (0, 59), "hour": (0, 23),
    "dom": (1, 31), "month": (1, 12), "dow": (0, 6),
}


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]


@dataclass(frozen=True)
class CronCase:
    second: Field | None  # None: a 5-field expression
    minute: Field
    hour: Field
    dom: Field
    month: Field
    dow: Field

    @property
    def text(self) -> str:
        fields = [self.minute, self.hour, self.dom, self.month, self.dow]
        if self.second is not None:
            fields.insert(0, self.second)
        return " ".join(f.text for f in fields)

    def matches(self, t: datetime) -> bool:
        if self.second is None:
            if t.second != 0:
                return False
        elif t.second not in self.second.values:
            return False
        if (t.minute not in self.minute.values or t.hour not in self.hour.values
                or t.month not in self.month.values):
            return False
        dom_ok = t.day in self.dom.values
        cron_dow = (t.weekday() + 1) % 7
        dow_ok = cron_dow in self.dow.values or (cron_dow == 0 and 7 in self.dow.values)
        # Vixie cron: a field that starts with "*" makes the two day fields AND, else OR
        if self.dom.text.startswith("*") or self.dow.text.startswith("*"):
            return dom_ok and dow_ok
        return dom_ok or dow_ok


@st.composite
def fields(draw: st.DrawFn, name: str, dense: bool = False) -> Field:
    lo, hi = RANGES[name]
    kind = draw(st.sampled_from(["star", "step", "range", "list", "list"]
                                if not dense else ["star", "step", "range"]))
    if kind == "star":
        return Field("*", frozenset(range(lo, hi + 1)))
    if kind == "step":
        step = draw(st.integers(2, max(2, (hi - lo) // 2)))
        return Field(f"*/{step}", frozenset(range(lo, hi + 1, step)))
    if kind == "range":
        a = draw(st.integers(lo, hi))
        b = draw(st.integers(a, hi))
        # cronsim reads a one-value range with a step ("5-5/2") as "5/2" (5 to the end);
        # Debian cron as {5}: not drawn, see docs/decisions.md
        step = draw(st.integers(1, 4)) if b > a else 1
        text = f"{a}-{b}" if step == 1 else f"{a}-{b}/{step}"
        return Field(text, frozenset(range(a, b + 1, step)))
    values = draw(st.lists(st.integers(lo, hi + (1 if name == "dow" else 0)),
                           min_size=1, max_size=4, unique=True))
    return Field(",".join(map(str, sorted(values))), frozenset(values))


@st.composite
def cron_cases(
    draw: st.DrawFn, seconds: bool = False, near_hours: tuple[int, ...] = ()
) -> CronCase:
    """Times of day sparse enough to keep a 3-day walk quick, dense ones now and then;
    `near_hours` (the local hours around a transition) are often among the hours."""
    dense = draw(st.integers(0, 3)) == 0
    minute = draw(fields("minute", dense=dense))
    hour = draw(fields("hour") if not dense else st.just(Field("*", frozenset(range(24)))))
    if not dense and near_hours and draw(st.booleans()):
        values = sorted(set(draw(st.lists(st.sampled_from(near_hours), min_size=1)))
                        | set(hour.values if hour.text != "*" else ()))
        hour = hour if hour.text == "*" else Field(",".join(map(str, values)),
                                                   frozenset(values))
    def day(name: str) -> Field:  # mostly "*": a day list rarely hits a transition's day
        lo, hi = RANGES[name]
        if draw(st.integers(0, 3)) > 0:
            return Field("*", frozenset(range(lo, hi + 1)))
        return draw(fields(name))

    return CronCase(
        second=draw(fields("second")) if seconds else None,
        minute=minute, hour=hour, dom=day("dom"), month=day("month"), dow=day("dow"),
    )


def local(tz: ZoneInfo, u: int) -> datetime:
    return datetime.fromtimestamp(u, tz).replace(tzinfo=None, fold=0)


def reference_ticks(case: CronCase, tz: ZoneInfo, lo: int, hi: int) -> list[int]:
    """Ticks (UTC epoch seconds) in (lo, hi], by walking every step of real time."""
    step = 1 if case.second is not None else 60
    # history for the clock's high-water mark: longer than any backward jump of ZONES
    u = (lo - (6 * 3600 if step == 1 else 86400)) // step * step
    high = local(tz, u)
    out: list[int] = []
    while u < hi:
        u += step
        shown = local(tz, u)
        if shown <= high:
            continue  # a repeated stretch: nothing new on the clock
        t, fired = high + timedelta(seconds=step), False
        while t <= shown:
            fired = fired or case.matches(t)
            t += timedelta(seconds=step)
        high = shown
        if fired and u > lo:
            out.append(u)
    return [x for x in out if x <= hi]


@functools.cache
def transitions(zone: str, year: int) -> tuple[int, ...]:
    """Instants (epoch s) where the zone's offset changes during `year`: hourly scan, then
    bisection. Independent of conveyor.schedules.wall."""
    tz = load_zone(zone)
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())

    def off(u: int) -> timedelta | None:
        return datetime.fromtimestamp(u, tz).utcoffset()

    found = []
    for u in range(start, end, 3600):
        if off(u) != off(u + 3600):
            a, b = u, u + 3600
            while b - a > 1:
                m = (a + b) // 2
                a, b = (m, b) if off(m) == off(a) else (a, m)
            found.append(b)
    return tuple(found)


@st.composite
def scenarios(
    draw: st.DrawFn, half_width_s: int, seconds: bool = False
) -> tuple[CronCase, str, int, int, tuple[int, int]]:
    """(case, zone, lo, hi, (probe, pivot)): a window of real time around `pivot`, one of
    the zone's transitions when the year has any, a cron that often matches the local hours
    around it, and a random instant `probe` in the window."""
    zone = draw(st.sampled_from(ZONES))
    year = draw(st.integers(1975, 2099))
    found = transitions(zone, year)
    if found and draw(st.integers(0, 9)) > 0:
        pivot = draw(st.sampled_from(found))
    else:
        pivot = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) + draw(
            st.integers(0, 364 * 86400)
        )
    tz = load_zone(zone)
    near = tuple(sorted({local(tz, pivot + d).hour for d in (-3600, -1, 0, 3600)}))
    case = draw(cron_cases(seconds=seconds, near_hours=near))
    center = pivot + draw(st.integers(-half_width_s, half_width_s))
    lo, hi = center - half_width_s, center + half_width_s
    return case, zone, lo, hi, (draw(st.integers(lo, hi)), pivot)
