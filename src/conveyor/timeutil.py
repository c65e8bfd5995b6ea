"""Time conversions: epoch milliseconds inside the broker, RFC 3339 UTC at the edges."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import overload

from conveyor.errors import ValidationError

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@overload
def ms_to_datetime(ms: int) -> datetime: ...
@overload
def ms_to_datetime(ms: None) -> None: ...
@overload
def ms_to_datetime(ms: int | None) -> datetime | None: ...
def ms_to_datetime(ms: int | None) -> datetime | None:
    """Epoch ms as an aware UTC datetime (None stays None)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValidationError(
            "timestamps must carry a time zone (e.g. 2026-01-01T00:00:00Z)",
            details={"value": dt.isoformat()},
        )
    return int(dt.timestamp() * 1000)


def parse_duration_s(text: str) -> float:
    """Parse `250ms`, `5s`, `1.5m`, `2h`, `1d` or a bare number of seconds."""
    m = _DURATION_RE.match(text)
    if not m:
        raise ValidationError(
            f"invalid duration {text!r}: use e.g. 250ms, 5s, 1.5m, 2h, 1d",
            details={"value": text},
        )
    return float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
