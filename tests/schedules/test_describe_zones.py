"""Descriptions of specs, and zones read from the tzdata package."""

from __future__ import annotations

import importlib.resources
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conveyor.schedules import describe, is_zone, load_zone, zone_names


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"cron": "30 2 * * *", "timezone": "America/New_York"},
     "At 02:30 every day (America/New_York)"),
    ({"cron": "@hourly"}, "At the start of every hour (UTC)"),
    ({"cron": "0 9 * * MON-FRI", "timezone": "Europe/Paris"},
     "At 09:00 on Monday through Friday (Europe/Paris)"),
    ({"cron": "*/10 * * * * *"}, "Every 10th second of every minute (UTC)"),
    ({"every_s": 30}, "every 30 s"),
    ({"every_s": 90}, "every 90 s"),
    ({"every_s": 300, "timezone": "Asia/Kolkata"}, "every 5 min"),
    ({"every_s": 7200}, "every 2 h"),
    ({"every_s": 86400}, "every 1 d"),
    ({"every_s": 1.5}, "every 1.5 s"),
])
def test_describe(kwargs: dict[str, object], text: str) -> None:
    assert describe(**kwargs) == text  # type: ignore[arg-type]


def test_zone_names() -> None:
    names = zone_names()
    assert {"UTC", "America/New_York", "Australia/Lord_Howe", "US/Eastern"} <= names
    assert "Factory" not in names and len(names) > 500
    assert is_zone("Europe/Dublin") and not is_zone("europe/dublin") and not is_zone(3)
    with pytest.raises(KeyError):
        load_zone("posixrules")


def test_zones_come_from_tzdata_not_the_host(tmp_path: Path) -> None:
    """A host whose zoneinfo says otherwise (here: a stale Chatham that is plain UTC) does
    not change the rules every worker uses."""
    fake = tmp_path / "Pacific" / "Chatham"
    fake.parent.mkdir()
    fake.write_bytes(importlib.resources.files("tzdata.zoneinfo").joinpath("UTC").read_bytes())
    load_zone.cache_clear()
    saved = zoneinfo.TZPATH
    zoneinfo.reset_tzpath(to=[str(tmp_path)])
    try:
        host = zoneinfo.ZoneInfo.no_cache("Pacific/Chatham")
        assert datetime(2027, 1, 1, tzinfo=host).utcoffset() == timedelta(0)
        tz = load_zone("Pacific/Chatham")
        assert str(tz) == "Pacific/Chatham"
        assert datetime(2027, 1, 1, tzinfo=tz).utcoffset() == timedelta(hours=13, minutes=45)
        assert datetime(2027, 7, 1, tzinfo=UTC).astimezone(tz).strftime("%H:%M") == "12:45"
    finally:
        zoneinfo.reset_tzpath(to=saved)
        load_zone.cache_clear()
