"""The schedule model: validation errors, defaults, canonical form and fingerprints."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor.errors import ErrorCode, ValidationError
from conveyor.schedules import PreviewRequest, Schedule
from conveyor.schedules.ticks import next_tick

BODY: dict[str, Any] = {
    "name": "nightly-report",
    "cron": "30 2 * * *",
    "timezone": "America/New_York",
    "job": {"type": "report", "payload": {"b": 1, "a": [1, 2]}},
}


def body(**changes: Any) -> dict[str, Any]:
    out = {**BODY, **changes}
    return {k: v for k, v in out.items() if v is not ...}


def errors(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        Schedule.parse(data)
    assert info.value.code == ErrorCode.VALIDATION_ERROR
    # the same errors through the JSON path the API takes
    with pytest.raises(ValidationError) as again:
        Schedule.parse(json.dumps(data))
    assert again.value.details == info.value.details
    details: list[dict[str, Any]] = info.value.details
    return details


def test_defaults() -> None:
    s = Schedule.parse(body(cron=..., every_s=30, timezone=...))
    assert (s.timezone, s.paused, s.overlap, s.catch_up, s.max_catch_up) == (
        "UTC", False, "allow", "latest", 100
    )
    assert (s.job.queue, s.job.priority, s.job.max_attempts, s.job.timeout_s) == (
        "default", 0, None, None
    )
    assert Schedule.parse(body(job={"type": "t"})).job.payload == {}


@pytest.mark.parametrize(("changes", "loc", "type_", "words"), [
    ({"cron": "61 * * * *"}, ["cron"], "cron_invalid", "Bad minute"),
    ({"cron": "* * * *"}, ["cron"], "cron_invalid", "5 fields"),
    ({"cron": "0 0 0 * * * *"}, ["cron"], "cron_invalid", "not 7"),
    ({"cron": "@reboot"}, ["cron"], "cron_invalid", "unknown shorthand"),
    ({"cron": "0 0 30 2 *"}, ["cron"], "cron_invalid", "day-of-month"),
    ({"cron": "* * */20 * 1L"}, ["cron"], "cron_invalid", "matches no date"),
    ({"cron": "x" * 201}, ["cron"], "string_too_long", "200"),
    ({"timezone": "Mars/Olympus"}, ["timezone"], "timezone_unknown", "unknown time zone"),
    ({"timezone": "america/new_york"}, ["timezone"], "timezone_unknown", "IANA"),
    ({"timezone": "../../etc/passwd"}, ["timezone"], "timezone_unknown", "IANA"),
    ({"timezone": "Factory"}, ["timezone"], "timezone_unknown", "IANA"),
    ({"every_s": 30}, [], "schedule_spec", "exactly one of cron or every_s"),
    ({"cron": ...}, [], "schedule_spec", "exactly one of cron or every_s"),
    ({"cron": ..., "every_s": 0.5}, ["every_s"], "greater_than_equal", "1"),
    ({"cron": ..., "every_s": "10"}, ["every_s"], "float_type", "number"),
    ({"cron": ..., "every_s": True}, ["every_s"], "float_type", "number"),
    ({"start_at": "2027-02-01T00:00:00Z", "end_at": "2027-01-01T00:00:00Z"}, [],
     "schedule_bounds", "end_at must be after start_at"),
    ({"start_at": "2027-01-01T00:00:00Z", "end_at": "2027-01-01T01:00:00+01:00"}, [],
     "schedule_bounds", "after"),
    ({"start_at": "2027-01-01T00:00:00"}, ["start_at"], "datetime_format", "timezone"),
    ({"start_at": "next tuesday"}, ["start_at"], "datetime_format", "datetime"),
    ({"end_at": "2100-01-01T00:00:00Z"}, ["end_at"], "instant_range", "2099"),
    ({"start_at": "1969-12-31T23:00:00Z"}, ["start_at"], "instant_range", "1970"),
    ({"name": "a b"}, ["name"], "schedule_name", "1-64 characters"),
    ({"name": "x" * 65}, ["name"], "schedule_name", "1-64 characters"),
    ({"job": {"type": "bad type"}}, ["job", "type"], "string_pattern_mismatch", "pattern"),
    ({"job": {"payload": {}}}, ["job", "type"], "missing", "required"),
    ({"job": {"type": "t", "queue": "q/1"}}, ["job", "queue"], "value_error", "queue name"),
    ({"job": {"type": "t", "priority": 1001}}, ["job", "priority"], "less_than_equal", ""),
    ({"job": {"type": "t", "max_attempts": 0}}, ["job", "max_attempts"],
     "greater_than_equal", ""),
    ({"job": {"type": "t", "timeout_s": 0}}, ["job", "timeout_s"], "greater_than", ""),
    ({"job": {"type": "t", "extra": 1}}, ["job", "extra"], "extra_forbidden", ""),
    ({"overlap": "never"}, ["overlap"], "literal_error", "'allow' or 'skip'"),
    ({"catch_up": "some"}, ["catch_up"], "literal_error", "'none', 'latest' or 'all'"),
    ({"max_catch_up": 0}, ["max_catch_up"], "greater_than_equal", ""),
    ({"max_catch_up": 1001}, ["max_catch_up"], "less_than_equal", ""),
    ({"paused": "yes"}, ["paused"], "bool_type", ""),
    ({"color": "blue"}, ["color"], "extra_forbidden", ""),
])
def test_bad_input_is_refused_with_details(
    changes: dict[str, Any], loc: list[Any], type_: str, words: str
) -> None:
    details = errors(body(**changes))
    assert len(details) == 1, details
    assert details[0]["loc"] == loc
    assert details[0]["type"] == type_
    assert words in details[0]["msg"]


def test_a_non_finite_payload_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        Schedule.parse(body(job={"type": "t", "payload": {"x": float("nan")}}))
    assert info.value.details[0]["type"] == "payload_not_json"


@pytest.mark.parametrize("cron", [
    "*/5 * * * *", "0 9 * * MON-FRI", "0 0 L * *", "0 0 * * 5L", "0 0 * * MON#1",
    "*/10 * * * * *", "0 30 2 * * *", "@hourly", "@DAILY", "@weekly", "@monthly", "@yearly",
    "@annually", "@midnight", "0 0 1 jan *", "0 0 * * 7",
])
def test_accepted_crons(cron: str) -> None:
    assert Schedule.parse(body(cron=cron)).cron is not None


def test_same_definition_same_canonical_json_and_fingerprint() -> None:
    a = Schedule.parse(body(start_at="2027-01-01T01:00:00.123456+01:00"))
    b = Schedule.parse(json.dumps(body(
        cron="30   2 * * *", job={"payload": {"a": [1, 2], "b": 1}, "type": "report",
                                  "queue": "default"},
        start_at="2027-01-01T00:00:00.123Z",
    )))
    assert a.canonical_json() == b.canonical_json()
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 32
    assert a.start_at == datetime(2027, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert json.loads(a.canonical_json())["start_at"] == "2027-01-01T00:00:00.123000Z"
    # every_s 30 and 30.0 are one definition
    c = Schedule.parse(body(cron=..., every_s=30))
    d = Schedule.parse(json.dumps(body(cron=..., every_s=30.0)))
    assert c.canonical_json() == d.canonical_json()


@pytest.mark.parametrize(("changes", "timing_changes"), [
    ({"job": {"type": "report", "payload": {"b": 2, "a": [1, 2]}}}, False),
    ({"paused": True}, False),
    ({"overlap": "skip"}, False),
    ({"catch_up": "all"}, False),
    ({"cron": "31 2 * * *"}, True),
    ({"timezone": "Europe/Paris"}, True),
    ({"end_at": "2030-01-01T00:00:00Z"}, True),
])
def test_fingerprints_tell_what_changed(changes: dict[str, Any], timing_changes: bool) -> None:
    a, b = Schedule.parse(body()), Schedule.parse(body(**changes))
    assert a.fingerprint() != b.fingerprint()
    assert (a.timing_fingerprint() != b.timing_fingerprint()) is timing_changes


def test_timing_from_the_model() -> None:
    s = Schedule.parse(body(start_at="2027-03-14T00:00:00Z", end_at="2027-03-16T00:00:00Z"))
    timing = s.timing()
    assert next_tick(timing, 0) == int(datetime(2027, 3, 14, 7, tzinfo=UTC).timestamp()) * 1000
    assert s.describe() == "At 02:30 every day (America/New_York)"


def test_python_values_are_accepted_as_such() -> None:
    s = Schedule(
        name="n", every_s=90, job={"type": "t"},  # type: ignore[arg-type]
        start_at=datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert s.every_s == 90.0 and s.describe() == "every 90 s"
    assert s.model_copy() == s


def test_preview_request() -> None:
    req = PreviewRequest.model_validate_json(
        '{"cron": "30 2 * * *", "timezone": "America/New_York", '
        '"after": "2027-03-13T12:00:00Z", "count": 2}'
    )
    assert req.count == 2 and req.after == datetime(2027, 3, 13, 12, tzinfo=UTC)
    assert PreviewRequest.model_validate({"every_s": 5}).count == 5
    for bad in ({"cron": "* * * * *", "every_s": 5}, {"every_s": 5, "count": 101},
                {"every_s": 5, "count": 0}, {"cron": "nope"}):
        with pytest.raises(Exception, match="validation error"):
            PreviewRequest.model_validate(bad)


def test_every_s_rounds_to_the_ms_and_instants_clamp_to_the_tick_range() -> None:
    """The document says "a number >= 1" and "years 1970 to 2099", exactly what is taken."""
    s = Schedule.parse(body(cron=..., every_s=1.0005))
    assert s.every_s == 1.0 and s == Schedule.parse(body(cron=..., every_s=1))
    assert Schedule.parse(body(cron=..., every_s=2.0016)).every_s == 2.002
    early = Schedule.parse(body(start_at="1970-01-01T00:00:00+05:00"))
    assert early.start_at == datetime(1970, 1, 1, tzinfo=UTC)
    late = Schedule.parse(body(end_at="2099-12-31T23:00:00-05:00"))
    assert late.end_at is not None and late.end_at.year == 2099
    assert Schedule.parse(body(max_catch_up=5.0)).max_catch_up == 5
    for bad in (5.5, "5", True):
        with pytest.raises(ValidationError):
            Schedule.parse(body(max_catch_up=bad))
