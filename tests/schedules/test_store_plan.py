"""`store.plan`: a due schedule to one fire step (issue 15). Late ticks follow the catch-up
policy and the lookahead window is fired too, so a schedule that was late once is on time
from its next tick on (a regression: it used to stay late, one maintenance period behind)."""

from __future__ import annotations

from conveyor.schedules import Schedule
from conveyor.schedules.store import LOOKAHEAD_MS, MAX_AHEAD_TICKS, DueRow, plan

NOW = 1_800_000_000_000  # a whole second


def _row(next_ms: int, **kw: object) -> DueRow:
    s = Schedule.parse({"name": "p", "every_s": 1, "job": {"type": "t"}, **kw})
    return DueRow("p", s.canonical_json(), "f" * 32, next_ms)


def test_late_ticks_follow_the_policy_and_the_window_is_fired_ahead() -> None:
    e = plan(_row(NOW - 2500 + 500), NOW + 250)  # ticks at NOW-2000 .. NOW due
    assert e is not None
    assert e.expect_next == NOW - 2000 and e.missed == 2  # latest: NOW-2000, NOW-1000 missed
    assert e.ticks == (NOW, *range(NOW + 1000, NOW + 250 + LOOKAHEAD_MS + 1, 1000))
    last = e.ticks[-1]
    assert last is not None and e.new_next == last + 1000
    assert e.new_next is not None and e.new_score == e.new_next - LOOKAHEAD_MS
    assert len(set(e.uids)) == len(e.ticks)


def test_catch_up_all_then_ahead() -> None:
    e = plan(_row(NOW - 3000, catch_up="all"), NOW)
    assert e is not None and e.missed == 0
    assert e.ticks[:4] == (NOW - 3000, NOW - 2000, NOW - 1000, NOW)


def test_overlap_skip_is_fired_at_its_tick_only() -> None:
    assert plan(_row(NOW + 1000, overlap="skip"), NOW) is None
    e = plan(_row(NOW - 1000, overlap="skip"), NOW + 10)
    assert e is not None and e.ticks == (NOW,) and e.missed == 1
    assert e.new_next == NOW + 1000 and e.new_score == NOW + 1000


def test_ahead_fires_the_window() -> None:
    e = plan(_row(NOW + 1000), NOW)
    assert e is not None and e.missed == 0
    assert e.ticks == tuple(range(NOW + 1000, NOW + LOOKAHEAD_MS + 1, 1000))
    assert len(e.ticks) <= MAX_AHEAD_TICKS
    fast = plan(DueRow("p", Schedule.parse({"name": "p", "cron": "* * * * * *",
                                            "job": {"type": "t"}}).canonical_json(),
                       "f" * 32, NOW + 1000), NOW)
    assert fast is not None and len(fast.ticks) == 5  # 5 s of seconds
    assert plan(_row(NOW + LOOKAHEAD_MS + 1), NOW) is None
