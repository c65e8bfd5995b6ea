"""Local wall time <-> UTC instants, with the DST rules of docs/decisions.md.

One idea carries every rule: let W(u) be the latest wall-clock reading the zone has shown at
or before instant u (a running maximum, so it never goes back). A wall time t fires at the
first instant u with W(u) >= t:
- a time skipped by a forward jump fires at the jump itself (the first instant after the gap);
- a time repeated by a backward jump fires at its first occurrence only, because W stays
  ahead of the clock until the repeated stretch is over;
- several skipped times of one gap fire once, together, at the jump.
Instants here are whole UTC epoch seconds; every zone offset since 1970 is whole seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_DAY_S = 86400


def offset_s(tz: ZoneInfo, u: int) -> int:
    off = datetime.fromtimestamp(u, tz).utcoffset()
    assert off is not None
    return int(off.total_seconds())


def local_wall(tz: ZoneInfo, u: int) -> datetime:
    """The wall-clock reading at instant u (naive)."""
    return datetime.fromtimestamp(u, tz).replace(tzinfo=None, fold=0)


def _first_change(tz: ZoneInfo, lo: int, hi: int) -> int:
    """The smallest instant in (lo, hi] whose offset differs from lo's; one must exist."""
    base = offset_s(tz, lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offset_s(tz, mid) == base:
            lo = mid
        else:
            hi = mid
    return hi


def wall_high(tz: ZoneInfo, u: int) -> datetime:
    """W(u): the latest wall time shown at or before instant u."""
    aware = datetime.fromtimestamp(u, tz)
    if not aware.fold:
        return aware.replace(tzinfo=None)
    # second pass through a repeated stretch: the clock showed more just before the jump
    first, second = aware.replace(fold=0).utcoffset(), aware.utcoffset()
    assert first is not None and second is not None
    back = int((first - second).total_seconds())
    jump = _first_change(tz, u - back, u)
    return local_wall(tz, jump - 1)


def first_instant(tz: ZoneInfo, wall: datetime) -> int:
    """The instant a wall time fires at: min{u : W(u) >= wall}."""
    later = int(wall.replace(tzinfo=tz, fold=0).timestamp())
    if local_wall(tz, later) == wall:
        return later  # exists; fold=0 is its first occurrence when it is repeated
    # skipped: fold=0 read it with the offset before the jump (after the jump), fold=1 with
    # the one after it (before the jump); the jump lies between
    earlier = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    return _first_change(tz, earlier, later)


def gaps(tz: ZoneInfo, after: int, until: int) -> list[tuple[int, datetime, datetime]]:
    """Forward jumps at instants in (after, until]: (instant, first skipped wall time, the
    wall time shown at the jump). Found by stepping a day at a time: between 1970 and 2100
    no zone in tzdata 2026f has two transitions less than two days apart."""
    found: list[tuple[int, datetime, datetime]] = []
    u, off = after, offset_s(tz, after)
    while u < until:
        v = min(u + _DAY_S, until)
        if offset_s(tz, v) == off:
            u = v
            continue
        jump = _first_change(tz, u, v)
        new = offset_s(tz, jump)
        if new > off:
            at = datetime.fromtimestamp(jump, UTC).replace(tzinfo=None)
            found.append((jump, at + timedelta(seconds=off), at + timedelta(seconds=new)))
        u, off = jump, new
    return found
