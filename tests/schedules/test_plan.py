"""Catch-up planning: what fires now, what is missed, what comes next."""

from __future__ import annotations

from datetime import datetime
from itertools import takewhile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.schedules.plan import DEFAULT_GRACE_MS, FirePlan, plan_fire
from conveyor.schedules.spec import CatchUp
from conveyor.schedules.ticks import Timing, iter_ticks, make_timing, next_tick

H = 3_600_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


HOURLY = make_timing(cron="0 * * * *")
TEN = ms("2027-05-01T10:00:00Z")


@pytest.mark.parametrize("policy", ["none", "latest", "all"])
def test_nothing_due(policy: CatchUp) -> None:
    assert plan_fire(HOURLY, TEN, TEN + H - 1, policy) == FirePlan((), None, TEN + H, 0, 0)


@pytest.mark.parametrize("policy", ["none", "latest", "all"])
def test_one_tick_on_time_fires_under_every_policy(policy: CatchUp) -> None:
    assert plan_fire(HOURLY, TEN, TEN + H + 3, policy) == FirePlan(
        (TEN + H,), TEN + H, TEN + 2 * H, 1, 0
    )


def test_after_an_outage() -> None:
    now = TEN + 5 * H + H // 2  # 15:30; 11:00 to 15:00 came due
    hours = tuple(TEN + k * H for k in range(1, 6))
    assert plan_fire(HOURLY, TEN, now, "latest") == FirePlan(
        (hours[-1],), hours[-1], TEN + 6 * H, 5, 4
    )
    # 15:00 is 30 minutes late: past the grace, so "none" fires nothing
    assert plan_fire(HOURLY, TEN, now, "none") == FirePlan((), hours[-1], TEN + 6 * H, 5, 5)
    assert plan_fire(HOURLY, TEN, now, "all") == FirePlan(hours, hours[-1], TEN + 6 * H, 5, 0)
    assert plan_fire(HOURLY, TEN, now, "all", max_catch_up=2) == FirePlan(
        hours[-2:], hours[-1], TEN + 6 * H, 5, 3
    )


def test_none_fires_the_newest_tick_within_the_grace() -> None:
    now = TEN + 5 * H + DEFAULT_GRACE_MS
    plan = plan_fire(HOURLY, TEN, now, "none")
    assert (plan.fire, plan.missed) == ((TEN + 5 * H,), 4)
    assert plan_fire(HOURLY, TEN, now, "none", grace_ms=DEFAULT_GRACE_MS - 1).fire == ()


def test_long_outages_are_counted_not_walked() -> None:
    week = 7 * 86400_000
    every = make_timing(every_s=1)
    plan = plan_fire(every, 0, week, "all")
    assert (plan.due, plan.missed, len(plan.fire)) == (604800, 604700, 100)
    assert plan.fire[-1] == week and plan.next_tick == week + 1000
    minutely = make_timing(cron="* * * * *", timezone="Europe/Berlin")
    year_start, year_end = ms("2027-01-01T00:00:00+01:00"), ms("2028-01-01T00:00:00+01:00")
    plan = plan_fire(minutely, year_start, year_end, "latest")
    assert (plan.due, plan.missed, plan.fire) == (525600 - 60, 525600 - 61, (year_end,))


def test_an_ended_schedule_has_no_next_tick() -> None:
    bounded = make_timing(cron="0 * * * *", start_ms=TEN, end_ms=TEN + 3 * H)
    plan = plan_fire(bounded, TEN - 1, TEN + 10 * H, "all")
    assert plan == FirePlan((TEN, TEN + H, TEN + 2 * H), TEN + 2 * H, None, 3, 0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="catch_up"):
        plan_fire(HOURLY, 0, 1, "sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_catch_up"):
        plan_fire(HOURLY, 0, 1, "all", max_catch_up=0)
    with pytest.raises(ValueError, match="grace_ms"):
        plan_fire(HOURLY, 0, 1, "none", grace_ms=-1)


TIMINGS = [
    make_timing(cron="*/7 * * * *", timezone="America/New_York"),
    make_timing(cron="30 1,2 * * *", timezone="Europe/Dublin"),
    make_timing(cron="*/10 * * * * *", timezone="Australia/Lord_Howe"),
    make_timing(every_s=45.5),
    make_timing(every_s=600, start_ms=ms("2027-03-14T00:00:00Z")),
]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.sampled_from(TIMINGS), st.sampled_from(["none", "latest", "all"]),
    st.integers(ms("2027-03-13T00:00:00Z"), ms("2027-03-15T00:00:00Z")),
    st.integers(0, 6 * H), st.integers(1, 150), st.integers(0, 10 * 60_000),
)
def test_plans_agree_with_the_tick_list(
    timing: Timing, policy: CatchUp, after: int, outage: int, cap: int, grace: int
) -> None:
    now = after + outage
    due = list(takewhile(lambda x: x <= now, iter_ticks(timing, after)))
    plan = plan_fire(timing, after, now, policy, max_catch_up=cap, grace_ms=grace)
    assert plan.due == len(due)
    assert plan.next_tick == next_tick(timing, now)
    assert plan.last_due == (due[-1] if due else None)
    assert plan.missed == len(due) - len(plan.fire)
    if policy == "all":
        assert plan.fire == tuple(due[-cap:])
    elif policy == "latest":
        assert plan.fire == tuple(due[-1:])
    else:
        assert plan.fire == (tuple(due[-1:]) if due and now - due[-1] <= grace else ())
