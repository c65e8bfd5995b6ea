"""The tick generator: when a schedule fires, as UTC epoch milliseconds.

Pure functions of a `Timing` and an instant, so every worker computes the same ticks and a
tick's identity (schedule, tick) is the same everywhere. Cron ticks are whole seconds,
matched on local wall time (`cron.py`) and mapped to instants by the DST rules (`wall.py`);
`every_s` ticks are `anchor + k * period` in real time (anchor: `start_at`, else the Unix
epoch), whatever the zone. Ticks exist from 1970 to `MAX_TICK_MS` (2100); later is "none".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from conveyor.schedules import wall
from conveyor.schedules.cron import Cron
from conveyor.schedules.zones import load_zone

MIN_TICK_MS = 0
MAX_TICK_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
PREVIEW_MAX = 100
_ONE_S = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Timing:
    """What decides a schedule's ticks: one of `cron` / `every_ms`, the zone, the bounds
    (`start_ms` inclusive, `end_ms` exclusive). Build it with `make_timing`."""

    cron: Cron | None
    every_ms: int | None
    zone: ZoneInfo
    start_ms: int | None = None
    end_ms: int | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every_ms is None):
            raise ValueError("a timing has exactly one of cron and every_ms")
        if self.every_ms is not None and self.every_ms < 1000:
            raise ValueError("every_ms must be >= 1000")

    @property
    def first_ms(self) -> int:
        """The earliest instant a tick may be at."""
        return MIN_TICK_MS if self.start_ms is None else max(MIN_TICK_MS, self.start_ms)

    @property
    def stop_ms(self) -> int:
        """Ticks are strictly before this instant."""
        return MAX_TICK_MS if self.end_ms is None else min(MAX_TICK_MS, self.end_ms)


def make_timing(
    *, cron: str | None = None, every_s: float | None = None, timezone: str = "UTC",
    start_ms: int | None = None, end_ms: int | None = None,
) -> Timing:
    """Build a Timing from primitives (ValueError / KeyError on bad input: `spec.py` is where
    input from outside is validated with clear messages)."""
    every_ms = None if every_s is None else round(every_s * 1000)
    return Timing(
        None if cron is None else Cron(cron), every_ms, load_zone(timezone), start_ms, end_ms
    )


# --- every_s: arithmetic ------------------------------------------------------------------
def _anchor(t: Timing) -> int:
    return t.start_ms if t.start_ms is not None else 0


def _every_index_at_or_before(t: Timing, ms: int) -> int:
    assert t.every_ms is not None
    return (ms - _anchor(t)) // t.every_ms


# --- cron: wall times -> instants ---------------------------------------------------------
def _cron_after_s(t: Timing, after_ms: int) -> int:
    """Cron ticks are whole seconds: tick*1000 > after_ms and >= first_ms <=> tick > this."""
    return max(after_ms // 1000, -(-t.first_ms // 1000) - 1)


def _instants(zone: ZoneInfo, walls: Iterator[datetime]) -> Iterator[int]:
    """Wall times in order -> their instants; the skipped times of one gap share one."""
    last = None
    for w in walls:
        u = wall.first_instant(zone, w)
        if u != last:
            yield u
            last = u


def _cron_ticks_after(t: Timing, after_s: int) -> Iterator[int]:
    assert t.cron is not None
    return _instants(t.zone, t.cron.iter_after(wall.wall_high(t.zone, after_s)))


def _cron_ticks_at_or_before(t: Timing, at_s: int) -> Iterator[int]:
    assert t.cron is not None
    return _instants(t.zone, t.cron.iter_at_or_before(wall.wall_high(t.zone, at_s)))


def _clamp_now(ms: int) -> int:
    return min(max(ms, MIN_TICK_MS - 1), MAX_TICK_MS)


# --- public -------------------------------------------------------------------------------
def iter_ticks(t: Timing, after_ms: int) -> Iterator[int]:
    """Every tick strictly after `after_ms`, ascending, until `end_ms` (or 2100)."""
    after_ms = _clamp_now(after_ms)
    stop = t.stop_ms
    if t.every_ms is not None:
        k = _every_index_at_or_before(t, after_ms) + 1
        if t.start_ms is not None:
            k = max(k, 0)
        tick = _anchor(t) + k * t.every_ms
        while tick < stop:
            if tick >= t.first_ms:
                yield tick
            tick += t.every_ms
        return
    for u in _cron_ticks_after(t, _cron_after_s(t, after_ms)):
        if u * 1000 >= stop:
            return
        yield u * 1000


def next_tick(t: Timing, after_ms: int) -> int | None:
    """The first tick strictly after `after_ms`, or None when the schedule has ended."""
    return next(iter_ticks(t, after_ms), None)


def iter_ticks_desc(t: Timing, at_ms: int) -> Iterator[int]:
    """Every tick at or before `at_ms`, newest first, back to `start_at` (or 1970)."""
    at_ms = min(_clamp_now(at_ms), t.stop_ms - 1)
    first = t.first_ms
    if t.every_ms is not None:
        tick = _anchor(t) + _every_index_at_or_before(t, at_ms) * t.every_ms
        while tick >= first:
            yield tick
            tick -= t.every_ms
        return
    if at_ms < 0:
        return
    for u in _cron_ticks_at_or_before(t, at_ms // 1000):
        if u * 1000 < first:
            return
        yield u * 1000


def prev_tick(t: Timing, at_ms: int) -> int | None:
    """The latest tick at or before `at_ms`, or None."""
    return next(iter_ticks_desc(t, at_ms), None)


def count_ticks(t: Timing, after_ms: int, until_ms: int) -> int:
    """How many ticks lie in (after_ms, until_ms], without visiting them one by one: O(1)
    for every_s, O(days in the range) for cron."""
    lo = max(_clamp_now(after_ms), t.first_ms - 1)
    hi = min(_clamp_now(until_ms), t.stop_ms - 1)
    if hi <= lo:
        return 0
    if t.every_ms is not None:
        return max(0, _every_index_at_or_before(t, hi) - _every_index_at_or_before(t, lo))
    assert t.cron is not None
    a, b = _cron_after_s(t, lo), hi // 1000
    if b <= a:
        return 0
    wa, wb = wall.wall_high(t.zone, a), wall.wall_high(t.zone, b)
    n = t.cron.count(wa, wb)
    for _jump, skipped_from, shown in wall.gaps(t.zone, a, b):
        # every matching wall time in [skipped_from, shown] fires once, at the jump
        together = t.cron.count(skipped_from - _ONE_S, shown)
        n -= max(0, together - 1)
    return n


def preview(t: Timing, after_ms: int, count: int = 5) -> list[int]:
    """The next `count` (1-100) ticks strictly after `after_ms`."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= PREVIEW_MAX:
        raise ValueError(f"count must be an integer from 1 to {PREVIEW_MAX}")
    return list(islice(iter_ticks(t, after_ms), count))
