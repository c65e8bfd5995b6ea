"""The tick generator on hand-checked cases: the DST rules of docs/decisions.md, zone by zone."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice, pairwise

import pytest

from conveyor.schedules.ticks import (
    MAX_TICK_MS,
    count_ticks,
    iter_ticks,
    iter_ticks_desc,
    make_timing,
    next_tick,
    prev_tick,
    preview,
)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def iso(value: int) -> str:
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def runs(cron: str, zone: str, after: str, count: int = 3) -> list[str]:
    return [iso(x) for x in preview(make_timing(cron=cron, timezone=zone), ms(after), count)]


def test_a_time_skipped_by_the_spring_jump_fires_once_right_after_it() -> None:
    # 02:30 does not exist in New York on 2027-03-14: it fires at 03:00 EDT = 07:00Z
    assert runs("30 2 * * *", "America/New_York", "2027-03-13T12:00:00Z") == [
        "2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z", "2027-03-16T06:30:00Z",
    ]


def test_a_time_repeated_by_the_autumn_jump_fires_once_at_its_first_occurrence() -> None:
    # 01:30 happens twice in New York on 2027-11-07: 01:30 EDT (05:30Z) fires, 06:30Z not
    assert runs("30 1 * * *", "America/New_York", "2027-11-06T12:00:00Z") == [
        "2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z", "2027-11-09T06:30:00Z",
    ]
    timing = make_timing(cron="30 1 * * *", timezone="America/New_York")
    assert iso(next_tick(timing, ms("2027-11-07T05:30:00Z")) or 0) == "2027-11-08T06:30:00Z"


def test_all_the_skipped_times_of_one_jump_fire_together_once() -> None:
    assert runs("*/15 2 * * *", "America/New_York", "2027-03-14T05:00:00Z", 2) == [
        "2027-03-14T07:00:00Z", "2027-03-15T06:00:00Z",
    ]
    # 03:00 itself matches too: still one tick at the jump
    assert runs("0 2,3 * * *", "America/New_York", "2027-03-14T05:00:00Z", 2) == [
        "2027-03-14T07:00:00Z", "2027-03-15T06:00:00Z",
    ]
    # seconds in the gap
    assert runs("*/20 30 2 * * *", "America/New_York", "2027-03-14T06:00:00Z", 2) == [
        "2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z",
    ]


def test_a_wildcard_hour_pauses_through_the_repeated_hour() -> None:
    # the rule applies to every cron: 01:00-01:59 EDT fire, their EST repeats do not
    assert runs("*/15 * * * *", "America/New_York", "2027-11-07T05:30:00Z", 4) == [
        "2027-11-07T05:45:00Z", "2027-11-07T07:00:00Z", "2027-11-07T07:15:00Z",
        "2027-11-07T07:30:00Z",
    ]
    # asked from inside the repeated hour: the next new wall time is 02:00 EST
    assert runs("*/15 * * * *", "America/New_York", "2027-11-07T06:10:00Z", 1) == [
        "2027-11-07T07:00:00Z"
    ]


@pytest.mark.parametrize(("cron", "zone", "after", "expected"), [
    # 30-minute shift: 02:00 -> 02:30 on 2027-10-03, 02:00 -> 01:30 on 2027-04-04
    ("15 2 * * *", "Australia/Lord_Howe", "2027-10-01T00:00:00Z",
     ["2027-10-01T15:45:00Z", "2027-10-02T15:30:00Z", "2027-10-03T15:15:00Z"]),
    ("45 1 * * *", "Australia/Lord_Howe", "2027-04-02T00:00:00Z",
     ["2027-04-02T14:45:00Z", "2027-04-03T14:45:00Z", "2027-04-04T15:15:00Z"]),
    # negative DST in tzdata (IST is standard time): offsets are what count
    ("30 1 * * *", "Europe/Dublin", "2027-03-27T00:00:00Z",
     ["2027-03-27T01:30:00Z", "2027-03-28T01:00:00Z", "2027-03-29T00:30:00Z"]),
    ("30 1 * * *", "Europe/Dublin", "2027-10-30T00:00:00Z",
     ["2027-10-30T00:30:00Z", "2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"]),
    # jumps at local midnight: 00:00 skipped on 2027-09-05, 23:xx repeated on 2027-04-03
    ("0 0 * * *", "America/Santiago", "2027-09-04T00:00:00Z",
     ["2027-09-04T04:00:00Z", "2027-09-05T04:00:00Z", "2027-09-06T03:00:00Z"]),
    ("30 23 * * *", "America/Santiago", "2027-04-03T00:00:00Z",
     ["2027-04-03T02:30:00Z", "2027-04-04T02:30:00Z", "2027-04-05T03:30:00Z"]),
    # +12:45 / +13:45, jump at 02:45 on 2027-09-26
    ("0 3 * * *", "Pacific/Chatham", "2027-09-24T00:00:00Z",
     ["2027-09-24T14:15:00Z", "2027-09-25T14:00:00Z", "2027-09-26T13:15:00Z"]),
    # a whole day skipped (2011-12-30 did not happen in Samoa)
    ("0 12 * * *", "Pacific/Apia", "2011-12-28T12:00:00Z",
     ["2011-12-28T22:00:00Z", "2011-12-29T22:00:00Z", "2011-12-30T10:00:00Z"]),
    # no DST
    ("0 9 * * *", "Asia/Kolkata", "2027-03-14T00:00:00Z",
     ["2027-03-14T03:30:00Z", "2027-03-15T03:30:00Z", "2027-03-16T03:30:00Z"]),
    ("@hourly", "UTC", "2027-03-14T00:00:00Z",
     ["2027-03-14T01:00:00Z", "2027-03-14T02:00:00Z", "2027-03-14T03:00:00Z"]),
])
def test_zones(cron: str, zone: str, after: str, expected: list[str]) -> None:
    assert runs(cron, zone, after) == expected


def test_a_year_counted_in_new_york() -> None:
    year = (ms("2027-01-01T00:00:00-05:00"), ms("2028-01-01T00:00:00-05:00") - 1)
    hourly = make_timing(cron="0 * * * *", timezone="America/New_York")
    # 8760 wall hours; 02:00 on 2027-03-14 shares the jump's instant with 03:00
    assert count_ticks(hourly, year[0] - 1, year[1]) == 8759
    minutely = make_timing(cron="* * * * *", timezone="America/New_York")
    # the 60 skipped minutes fire together with 03:00
    assert count_ticks(minutely, year[0] - 1, year[1]) == 525600 - 60


def test_ticks_strictly_after_and_at_or_before() -> None:
    timing = make_timing(cron="0 12 * * *")
    noon = ms("2027-06-01T12:00:00Z")
    assert next_tick(timing, noon) == noon + 86400_000
    assert next_tick(timing, noon - 1) == noon
    assert prev_tick(timing, noon) == noon
    assert prev_tick(timing, noon - 1) == noon - 86400_000
    assert count_ticks(timing, noon - 1, noon) == 1
    assert count_ticks(timing, noon, noon + 86400_000 - 1) == 0


def test_every_s_spacing_is_real_time_across_dst() -> None:
    timing = make_timing(every_s=3600, timezone="America/New_York")
    ticks = list(islice(iter_ticks(timing, ms("2027-11-07T03:00:00Z")), 6))
    assert [iso(x) for x in ticks[:4]] == [
        "2027-11-07T04:00:00Z", "2027-11-07T05:00:00Z", "2027-11-07T06:00:00Z",
        "2027-11-07T07:00:00Z",
    ]
    assert {b - a for a, b in pairwise(ticks)} == {3_600_000}


def test_every_s_is_anchored_on_start_at_else_the_epoch() -> None:
    epoch = make_timing(every_s=7)
    assert next_tick(epoch, 1_000_000) == 1_001_000  # 143 * 7000
    start = ms("2027-01-01T00:00:00.250Z")
    anchored = make_timing(every_s=1.5, start_ms=start)
    assert next_tick(anchored, 0) == start
    assert next_tick(anchored, start) == start + 1500
    assert prev_tick(anchored, start - 1) is None


def test_bounds_start_inclusive_end_exclusive() -> None:
    start, end = ms("2027-01-01T00:00:00Z"), ms("2027-01-04T00:00:00Z")
    timing = make_timing(cron="0 0 * * *", start_ms=start, end_ms=end)
    assert [iso(x) for x in iter_ticks(timing, 0)] == [
        "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z", "2027-01-03T00:00:00Z",
    ]
    assert next_tick(timing, end) is None
    assert [iso(x) for x in iter_ticks_desc(timing, end + 10**9)] == [
        "2027-01-03T00:00:00Z", "2027-01-02T00:00:00Z", "2027-01-01T00:00:00Z",
    ]
    # a start between seconds: the first whole-second tick at or after it
    odd = make_timing(cron="* * * * * *", start_ms=start + 1)
    assert next_tick(odd, 0) == start + 1000


def test_ticks_end_in_2100() -> None:
    timing = make_timing(cron="0 0 1 1 *")
    assert iso(prev_tick(timing, 2**62) or 0) == "2099-01-01T00:00:00Z"
    assert next_tick(timing, ms("2099-01-01T00:00:00Z")) is None
    assert next_tick(make_timing(every_s=60), MAX_TICK_MS) is None


def test_preview_count_is_bounded() -> None:
    timing = make_timing(every_s=1)
    assert len(preview(timing, 0, 100)) == 100
    for bad in (0, 101, True):
        with pytest.raises(ValueError, match="count"):
            preview(timing, 0, bad)
