"""Event records as the brokers store them, back into `JobEvent` (issue 17).

Both logs keep the same fields: the job's uid, type, the event name, the state and attempt
count the transition left, the broker's time (epoch ms), an error code, and a progress
report (JSON) on progress events. A record read back is checked like any other: one that
does not parse is skipped with a warning, never the end of a follower.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from conveyor.events.model import JOB_TYPE_PATTERN, EventName, JobEvent, Progress
from conveyor.jobs import JobState

log = logging.getLogger("conveyor.events")

#: a job type that does not read back (a corrupt record set aside) is shown as this
UNKNOWN_TYPE = "unknown"
_TYPE_RE = re.compile(JOB_TYPE_PATTERN)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def progress_json(value: float, message: str | None, at_ms: int) -> str:
    """The stored form of a progress report (job field and event field alike)."""
    return json.dumps({"value": value, "message": message, "at": at_ms},
                      separators=(",", ":"), ensure_ascii=False)


def progress_from_json(text: str | None) -> Progress | None:
    """A stored progress report, or None when absent or unusable."""
    if not text:
        return None
    try:
        data = json.loads(text)
        return Progress(value=data["value"], message=data.get("message"),
                        at=_at(int(data["at"])))
    except (ValueError, TypeError, KeyError, PydanticValidationError):
        return None


def event_from_record(
    queue: str, event_id: str, uid: Any, jtype: Any, name: Any, state: Any, attempt: Any,
    at_ms: Any, code: Any, progress: Any,
) -> JobEvent | None:
    """One stored event as a `JobEvent`, or None (logged) when it does not parse."""
    try:
        jtype = str(jtype or "")
        event = JobEvent(
            id=event_id, job_id=f"{queue}:{uid}", queue=queue,
            type=jtype if _TYPE_RE.fullmatch(jtype) else UNKNOWN_TYPE,
            event=EventName(str(name)), state=JobState(str(state)), attempt=int(attempt or 0),
            at=_at(int(at_ms)), error_code=str(code)[:128] if code else None,
            progress=progress_from_json(str(progress)) if progress else None,
        )
    except (ValueError, TypeError, PydanticValidationError) as exc:
        log.warning("corrupt_event_skipped", extra={"queue": queue, "event_id": event_id,
                                                    "error": str(exc)[:200]})
        return None
    return event
