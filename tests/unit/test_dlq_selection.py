"""The DLQ selection rules, once (`conveyor.dlq.selection`): ids or filters, never every dead
job of every queue, and the filter listings apply to the dead jobs they read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.dlq.selection import DeadSelection, check_ids_or_filters, dead_filter
from conveyor.errors import ValidationError
from conveyor.jobs import ErrorInfo, Job, JobState

DIED = datetime(2030, 1, 1, 12, 0, 0, 5000, tzinfo=UTC)  # a whole ms: 12:00:00.005
JOB_ID = "mail:" + "0" * 32


def _dead(code: str | None = "smtp_permanent", died: datetime | None = DIED) -> Job:
    return Job(id=JOB_ID, type="email", queue="mail", payload={}, state=JobState.DEAD,
               max_attempts=3, created_at=DIED - timedelta(minutes=1), finished_at=died,
               last_error=None if code is None else ErrorInfo(code=code, message="m"))


def test_no_filter_keeps_everything() -> None:
    assert dead_filter() is None


def test_error_code_matches_the_error_the_job_died_with() -> None:
    keep = dead_filter(error_code="smtp_permanent")
    assert keep is not None
    assert keep(_dead())
    assert not keep(_dead("handler_error"))
    assert not keep(_dead(None))


def test_death_range_is_half_open_in_whole_ms() -> None:
    ms = timedelta(milliseconds=1)
    at = dead_filter(died_after=DIED)
    before = dead_filter(died_before=DIED)
    assert at is not None and before is not None
    assert at(_dead()) and not before(_dead())
    assert not at(_dead(died=DIED - ms)) and before(_dead(died=DIED - ms))
    # a bound inside a millisecond rounds up, as the broker's `dlq_scan` does
    inside = dead_filter(died_before=DIED + timedelta(microseconds=1))
    assert inside is not None and inside(_dead())
    empty = dead_filter(died_after=DIED, died_before=DIED)
    assert empty is not None and not empty(_dead())
    assert not at(_dead(died=None))


@pytest.mark.parametrize("kwargs", [
    {"error_code": "bad code!"}, {"error_code": ""}, {"died_before": datetime(2030, 1, 1)},
])
def test_bad_filters_are_validation_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        dead_filter(**kwargs)  # type: ignore[arg-type]


def test_ids_or_filters_not_both() -> None:
    check_ids_or_filters(True, ["ids", "dry_run", "limit"])
    check_ids_or_filters(False, ["type", "error_code"])
    with pytest.raises(ValidationError, match="error_code"):
        check_ids_or_filters(True, {"ids": [], "error_code": "x"})
    with pytest.raises(ValidationError, match="not both"):
        DeadSelection((JOB_ID,), type="email")


def test_never_every_dead_job_of_every_queue() -> None:
    with pytest.raises(ValidationError, match="every dead job of every queue"):
        DeadSelection()
    assert DeadSelection(queue="mail").queue == "mail"
    assert DeadSelection((JOB_ID,), queue="mail").ids == (JOB_ID,)
    with pytest.raises(ValidationError, match="not in queue other"):
        DeadSelection((JOB_ID,), queue="other")
