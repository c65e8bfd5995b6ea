"""Flow control: the limits a queue sets on its jobs, and the `limit_key` a job may carry.

Limits are enforced by the broker at fetch, in the same atomic step that leases (see
docs/decisions.md, "Flow control"); this module holds the model both brokers share: what a
limits record may say, how it is checked, and the rate syntax of the CLI (`5/s`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from conveyor.errors import ValidationError

LIMIT_KEY_MAX = 128
#: the largest count, concurrency or burst a limits record takes
LIMIT_MAX = 1_000_000
#: the longest rate window (one day) and the shortest (one millisecond)
PER_S_MAX = 86_400.0
PER_S_MIN = 0.001
WEIGHT_MAX = 100
#: at most this many keys carry their own weight
WEIGHTS_MAX = 1000


def limit_key_problem(key: Any) -> str | None:
    """None when `key` is a usable limit key (1-128 printable characters), else why not."""
    if not (isinstance(key, str) and 1 <= len(key) <= LIMIT_KEY_MAX and key.isprintable()):
        return f"limit_key must be 1-{LIMIT_KEY_MAX} printable characters"
    return None


def check_limit_key(key: Any) -> str | None:
    """A job's limit key (None: the job has none); ValidationError for a bad one."""
    if key is None:
        return None
    problem = limit_key_problem(key)
    if problem:
        raise ValidationError(problem, details=[{"loc": ["limit_key"], "msg": problem,
                                                 "value": str(key)[:200]}])
    return str(key)


class Rate(BaseModel):
    """`count` starts per `per_s` seconds: a token bucket refilled at count/per_s tokens per
    second, holding at most `burst` tokens (so starts in any window of W seconds are at most
    count * W / per_s + burst)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=1, le=LIMIT_MAX, strict=True)
    per_s: float = Field(default=1.0, ge=PER_S_MIN, le=PER_S_MAX, allow_inf_nan=False)
    burst: int = Field(default=1, ge=1, le=LIMIT_MAX, strict=True)

    @property
    def per_ms(self) -> int:
        return max(round(self.per_s * 1000), 1)


class QueueLimits(BaseModel):
    """A queue's limits; every field None (or absent) means no such limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int | None = Field(default=None, ge=1, le=LIMIT_MAX, strict=True)
    rate: Rate | None = None
    key_concurrency: int | None = Field(default=None, ge=1, le=LIMIT_MAX, strict=True)
    key_rate: Rate | None = None
    key_weights: dict[str, int] | None = Field(default=None, max_length=WEIGHTS_MAX)

    @field_validator("key_weights")
    @classmethod
    def _weights(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        if v is None:
            return None
        for key, weight in v.items():
            problem = limit_key_problem(key)
            if problem:
                raise ValueError(f"key_weights: {problem}")
            if isinstance(weight, bool) or not isinstance(weight, int) or not (
                1 <= weight <= WEIGHT_MAX
            ):
                raise ValueError(f"key_weights: a weight is an integer from 1 to {WEIGHT_MAX}")
        return v

    @property
    def empty(self) -> bool:
        return (self.concurrency is None and self.rate is None and self.key_concurrency is None
                and self.key_rate is None and not self.key_weights)

    def as_json(self) -> str:
        return self.model_dump_json()


def parse_limits(data: Any) -> QueueLimits:
    """A limits record from outside (an HTTP body, a stored record); ValidationError
    naming every bad field."""
    try:
        return QueueLimits.model_validate(data)
    except PydanticValidationError as exc:
        details = [{"loc": list(e["loc"]), "msg": str(e["msg"])} for e in exc.errors()]
        raise ValidationError("invalid limits: " + str(details[0]["msg"]),
                              details=details) from exc


def stored_limits(text: str | None) -> QueueLimits | None:
    """The limits a broker stored as JSON, or None; a record that does not parse reads as
    no limits at all rather than a crash (the broker's own numeric fields still apply)."""
    if not text:
        return None
    try:
        return QueueLimits.model_validate_json(text)
    except PydanticValidationError:
        return None


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|min|m|h)\s*$")


def parse_rate(text: str, burst: int | None = None) -> Rate:
    """`5/s`, `100/m`, `10/2.5s`, `1/h` as a Rate (ValidationError otherwise)."""
    m = _RATE_RE.match(text or "")
    if not m:
        raise ValidationError(
            f"invalid rate {text!r}: write COUNT/UNIT such as 5/s, 100/m or 10/2.5s",
            details={"rate": text},
        )
    per = float(m.group(2) or 1) * _UNITS[m.group(3)]
    if not math.isfinite(per):
        raise ValidationError(f"invalid rate {text!r}", details={"rate": text})
    data: dict[str, Any] = {"count": int(m.group(1)), "per_s": per}
    if burst is not None:
        data["burst"] = burst
    return parse_limits({"rate": data}).rate or Rate(count=1)
