"""Property tests of the tick generator against the brute-force reference.

Default runs stay at a few seconds; for a long manual run scale the examples, e.g.
`CONVEYOR_PROPERTY_SCALE=20 pytest tests/schedules -q`.
"""

from __future__ import annotations

import os
from itertools import islice, pairwise, takewhile

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conveyor.schedules.cron import Cron, CronError
from conveyor.schedules.ticks import (
    count_ticks,
    iter_ticks,
    iter_ticks_desc,
    make_timing,
    next_tick,
    prev_tick,
)
from tests.schedules.schedule_reference import ZONES, CronCase, reference_ticks, scenarios

#: hundreds of generated crons against the reference: 20 s on a loaded 2-core machine
pytestmark = pytest.mark.timeout(120)

SCALE = int(os.environ.get("CONVEYOR_PROPERTY_SCALE", "1"))


def _settings(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=SCALE == 1,
                    suppress_health_check=[HealthCheck.too_slow])


def _parses(case: CronCase) -> bool:
    try:
        Cron(case.text)
    except CronError:
        return False
    return True


def _check_window(
    case: CronCase, zone: str, lo: int, hi: int, around: tuple[int, int]
) -> None:
    assume(_parses(case))
    timing = make_timing(cron=case.text, timezone=zone)
    expected = [u * 1000 for u in reference_ticks(case, timing.zone, lo, hi)]
    got = list(takewhile(lambda x: x <= hi * 1000, iter_ticks(timing, lo * 1000)))
    assert got == expected, (case.text, zone)
    # the same ticks counted, read backwards, and found one at a time
    assert count_ticks(timing, lo * 1000, hi * 1000) == len(expected)
    back = list(takewhile(lambda x: x > lo * 1000, iter_ticks_desc(timing, hi * 1000)))
    assert back == expected[::-1]
    # one tick at a time, from instants every 5 minutes for 2 hours around a random instant
    # and the transition (inside a repeated stretch, just after a skipped one), and at ticks
    probes = [c * 1000 + k * 300_000 + 500 for c in around for k in range(-24, 25)]
    probes += [x - 1 for x in expected[:50]] + expected[:50]
    for after_ms in (p for p in probes if lo * 1000 <= p <= hi * 1000):
        later = [x for x in expected if x > after_ms]
        if later:
            assert next_tick(timing, after_ms) == later[0], (case.text, zone, after_ms)
        earlier = [x for x in expected if x <= after_ms]
        if earlier:
            assert prev_tick(timing, after_ms) == earlier[-1], (case.text, zone, after_ms)


@_settings(40)
@given(scenarios(half_width_s=18 * 3600))
def test_five_field_crons_match_the_reference(
    scenario: tuple[CronCase, str, int, int, tuple[int, int]],
) -> None:
    _check_window(*scenario)


@_settings(10)
@given(scenarios(half_width_s=3600, seconds=True))
def test_seconds_field_crons_match_the_reference(
    scenario: tuple[CronCase, str, int, int, tuple[int, int]],
) -> None:
    _check_window(*scenario)


@_settings(60)
@given(
    st.integers(1000, 10 * 86400_000), st.sampled_from(ZONES),
    st.integers(0, 4_000_000_000_000), st.one_of(st.none(), st.integers(0, 4_000_000_000_000)),
)
def test_every_s_keeps_exact_real_time_spacing(
    every_ms: int, zone: str, after: int, start: int | None
) -> None:
    timing = make_timing(every_s=every_ms / 1000, timezone=zone, start_ms=start)
    ticks = list(islice(iter_ticks(timing, after), 50))
    anchor = 0 if start is None else start
    assert ticks, "an unbounded interval schedule always has a next tick"
    assert ticks[0] > after and ticks[0] - every_ms <= max(after, anchor - every_ms)
    assert all(b - a == every_ms for a, b in pairwise(ticks))
    assert all((x - anchor) % every_ms == 0 and x >= anchor for x in ticks)
    # the zone changes nothing
    assert ticks == list(islice(iter_ticks(make_timing(
        every_s=every_ms / 1000, timezone="UTC", start_ms=start), after), 50))
    assert count_ticks(timing, after, ticks[-1]) == len(ticks)
    assert prev_tick(timing, ticks[-1] + every_ms - 1) == ticks[-1]


@_settings(40)
@given(
    st.sampled_from(["*/7 * * * *", "0 2 * * *", "30 1 * * *", "*/20 * * * * *", None]),
    st.sampled_from(ZONES), st.integers(1_600_000_000_000, 1_900_000_000_000),
    st.integers(-3 * 86400_000, 3 * 86400_000), st.integers(1, 3 * 86400_000),
)
def test_start_and_end_bound_the_ticks(
    cron: str | None, zone: str, after: int, start_delta: int, length: int
) -> None:
    every = None if cron is not None else 37.5
    start, end = after + start_delta, after + start_delta + length
    free = make_timing(cron=cron, every_s=every, timezone=zone, start_ms=None if every is None
                       else start)  # an interval's anchor is its start_at: keep it in both
    bounded = make_timing(cron=cron, every_s=every, timezone=zone, start_ms=start, end_ms=end)
    horizon = max(after, end) + 1
    expected = [x for x in takewhile(lambda x: x < horizon, iter_ticks(free, after))
                if start <= x < end]
    got = list(takewhile(lambda x: x < horizon, iter_ticks(bounded, after)))
    assert got == expected
    assert count_ticks(bounded, after, horizon) == len(expected)
    assert list(takewhile(lambda x: x > after, iter_ticks_desc(bounded, horizon))) == (
        expected[::-1]
    )
