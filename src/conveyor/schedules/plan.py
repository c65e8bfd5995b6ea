"""Catch-up planning: which ticks to fire now, as a pure function, so the broker layer only
carries the plan out (atomically, conditioned on the state it was computed from).

The state a schedule keeps is `after_ms`: its last fired (or accounted) tick, or the instant
it started counting (created, resumed). Ticks in (after_ms, now_ms] are due. Overlap "skip"
needs job states and is the broker's; planning is about time only.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from conveyor.schedules.spec import DEFAULT_MAX_CATCH_UP, MAX_CATCH_UP_LIMIT, CatchUp
from conveyor.schedules.ticks import Timing, count_ticks, iter_ticks_desc, next_tick

#: under catch_up "none", a due tick at most this late still fires ("on time")
DEFAULT_GRACE_MS = 60_000


@dataclass(frozen=True, slots=True)
class FirePlan:
    """`fire`: ticks to enqueue now, oldest first. `last_due`: the newest due tick (the new
    `after_ms` once the plan is carried out; None: nothing was due, keep the old one).
    `next_tick`: the first tick after now (None: the schedule has ended). `due`: ticks in
    (after, now]; `missed`: those of them not fired (due - len(fire))."""

    fire: tuple[int, ...]
    last_due: int | None
    next_tick: int | None
    due: int
    missed: int


def plan_fire(
    t: Timing, after_ms: int, now_ms: int, catch_up: CatchUp = "latest", *,
    max_catch_up: int = DEFAULT_MAX_CATCH_UP, grace_ms: int = DEFAULT_GRACE_MS,
) -> FirePlan:
    """Plan the firing of every tick due at `now_ms`:
    - "none": the newest due tick if it is at most `grace_ms` late; older ones are missed;
    - "latest": the newest due tick, however late; older ones are missed;
    - "all": the newest `max_catch_up` due ticks; older ones are missed.
    Cost: O(1) for every_s, O(days since after_ms) + O(ticks fired) for cron."""
    if catch_up not in ("none", "latest", "all"):
        raise ValueError(f"unknown catch_up policy {catch_up!r}")
    if not 1 <= max_catch_up <= MAX_CATCH_UP_LIMIT:
        raise ValueError(f"max_catch_up must be from 1 to {MAX_CATCH_UP_LIMIT}")
    if grace_ms < 0:
        raise ValueError("grace_ms must be >= 0")
    upcoming = next_tick(t, max(after_ms, now_ms))
    due = count_ticks(t, after_ms, now_ms) if now_ms > after_ms else 0
    if due == 0:
        return FirePlan((), None, upcoming, 0, 0)
    keep = max_catch_up if catch_up == "all" else 1
    newest = list(islice(iter_ticks_desc(t, now_ms), min(keep, due)))
    last_due = newest[0]
    if catch_up == "none" and now_ms - last_due > grace_ms:
        newest = []
    return FirePlan(tuple(reversed(newest)), last_due, upcoming, due, due - len(newest))
