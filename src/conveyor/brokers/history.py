"""A job's history as both brokers store it: one JSON object per line, times in epoch ms."""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json

from conveyor.jobs import Attempt
from conveyor.timeutil import ms_to_datetime


def _opt_ms(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def parse_history(text: str) -> list[Attempt]:
    """Raises ValueError (pydantic's ValidationError is one) on a line that does not parse."""
    out: list[Attempt] = []
    for line in text.splitlines():
        if not line:
            continue
        raw: dict[str, Any] = from_json(line)
        for key in ("started_at", "finished_at"):
            raw[key] = ms_to_datetime(_opt_ms(raw.get(key)))
        out.append(Attempt.model_validate(raw))
    return out
