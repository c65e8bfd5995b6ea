"""`cv.schedules` on the synchronous client (issue 15): the same calls as the async one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor.client import Conveyor
from conveyor.errors import ScheduleNotFound, ValidationError
from conveyor.schedules import Schedule


def test_sync_schedules(client: Conveyor) -> None:
    res = client.schedules.put({"name": "sync1", "cron": "@hourly",
                                "job": {"type": "fake", "queue": "sc"}})
    assert res.created and res.schedule.description
    assert not client.schedules.put(Schedule.parse({
        "name": "sync1", "cron": "@hourly", "job": {"type": "fake", "queue": "sc"}})).changed
    assert client.schedules.get("sync1") == res.schedule
    assert [s.name for s in client.schedules.list().items] == ["sync1"]
    assert client.schedules.pause("sync1").paused
    assert not client.schedules.resume("sync1").paused
    job = client.schedules.trigger("sync1")
    assert job.schedule is not None and job.schedule.name == "sync1"
    assert [j.id for j in client.schedules.runs("sync1").items] == [job.id]
    assert client.schedules.preview({"cron": "@hourly", "after": "2027-01-01T00:30:00Z",
                                     "count": 2}) == [
        datetime(2027, 1, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, 2, tzinfo=UTC)]
    with pytest.raises(ValidationError):
        client.schedules.preview({"cron": "@hourly", "count": 0})
    client.schedules.delete("sync1")
    with pytest.raises(ScheduleNotFound):
        client.schedules.get("sync1")
