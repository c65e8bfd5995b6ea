"""The schedule model: what a user declares, validated, with a canonical form.

Strict like the API's request models (`"10"` is not a number, unknown fields are refused) so
one model serves the API body, the client and schedules declared in code. The canonical JSON
decides "replacing with an identical body changes nothing": equal definitions serialise to
equal bytes (UTC bounds at millisecond precision, sorted keys, normalised cron spacing).
Registry checks (an unknown job type, a payload its model rejects, the payload size) are the
client's, made at save time with the same code as enqueue.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self

import pydantic
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
)
from pydantic_core import PydanticCustomError

from conveyor.errors import ValidationError
from conveyor.jobs import MAX_ATTEMPTS_LIMIT, MAX_TIMEOUT_S
from conveyor.jsontypes import WHOLE
from conveyor.queues import (
    DEFAULT_QUEUE,
    PRIORITY_MAX,
    PRIORITY_MIN,
    QUEUE_NAME_RE,
    TYPE_NAME_RE,
    QueueName,
)
from conveyor.schedules.cron import CRON_MAX_LEN, Cron, CronError, normalize
from conveyor.schedules.describe import describe
from conveyor.schedules.ticks import MAX_TICK_MS, PREVIEW_MAX, Timing, make_timing
from conveyor.schedules.zones import is_zone

MAX_EVERY_S = 366 * 24 * 3600.0
MAX_CATCH_UP_LIMIT = 1000
DEFAULT_MAX_CATCH_UP = 100
DEFAULT_TIMEZONE = "UTC"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

Overlap = Literal["allow", "skip"]
CatchUp = Literal["none", "latest", "all"]


def _check_name(name: str) -> str:
    if not QUEUE_NAME_RE.fullmatch(name):
        raise PydanticCustomError(
            "schedule_name", "schedule name must be 1-64 characters of A-Z a-z 0-9 _ . -"
        )
    return name


def _check_cron(text: str) -> str:
    try:
        Cron(text)
    except CronError as exc:
        raise PydanticCustomError("cron_invalid", "{reason}", {"reason": str(exc)}) from None
    return normalize(text)


def _check_zone(name: str) -> str:
    if not is_zone(name):
        raise PydanticCustomError(
            "timezone_unknown",
            "unknown time zone '{name}': use an IANA name such as UTC or Europe/Paris",
            {"name": name[:64]},
        )
    return name


def _check_every(value: float) -> float:
    """Rounded to the millisecond (the broker's unit): `1.0005` is `1.0`, as the document
    can say "a number >= 1" exactly (a `multipleOf` of a fraction is not exact in floats)."""
    if not math.isfinite(value):
        raise PydanticCustomError("every_s_finite", "every_s must be a finite number")
    return round(value * 1000) / 1000


_AWARE: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _text_instant(value: Any) -> Any:
    """RFC 3339 text, read with pydantic's JSON-mode grammar (the API's) from JSON and from
    Python alike (CLI args, config): a strict model would refuse text from Python."""
    if isinstance(value, str):
        try:
            return _AWARE.validate_json(json.dumps(value), strict=True)
        except pydantic.ValidationError as exc:
            raise PydanticCustomError(
                "datetime_format", "{reason}", {"reason": exc.errors()[0]["msg"]}
            ) from None
    return value


#: the years an instant may be written in (as the document's pattern says)
INSTANT_YEARS = (1970, 2099)
INSTANT_PATTERN = r"^(?:19[7-9][0-9]|20[0-9]{2})-"


def _utc_ms(value: datetime) -> datetime:
    """To UTC, floored to the millisecond (the broker's unit). Written in the years
    1970-2099; an offset that carries it out of [1970, 2100) UTC is clamped to the edge
    (no tick exists outside)."""
    low, high = INSTANT_YEARS
    if not low <= value.year <= high:
        raise PydanticCustomError("instant_range", "must be in the years 1970 to 2099")
    ms = min(max((value - _EPOCH) // _MS, 0), MAX_TICK_MS - 1)
    return _EPOCH + ms * _MS


def to_ms(value: datetime) -> int:
    return (value - _EPOCH) // _MS


ScheduleName = Annotated[str, AfterValidator(_check_name)]
CronText = Annotated[str, Field(min_length=1, max_length=CRON_MAX_LEN,
                                 json_schema_extra={"format": "cron"}),
                     AfterValidator(_check_cron)]
TimezoneName = Annotated[str, Field(max_length=64, json_schema_extra={
    "format": "iana-time-zone", "description": "an IANA time zone name (tzdata), such as "
    "UTC or Europe/Paris"}), AfterValidator(_check_zone)]
EverySeconds = Annotated[float, Field(ge=1, le=MAX_EVERY_S), AfterValidator(_check_every)]
Instant = Annotated[AwareDatetime, Field(json_schema_extra={"pattern": INSTANT_PATTERN}),
                    BeforeValidator(_text_instant), AfterValidator(_utc_ms)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _one_spec(cron: str | None, every_s: float | None) -> None:
    if (cron is None) == (every_s is None):
        raise PydanticCustomError("schedule_spec", "give exactly one of cron or every_s")


class JobTemplate(_Strict):
    """The job each tick enqueues. `max_attempts` / `timeout_s` unset: the handler's."""

    type: str = Field(pattern=TYPE_NAME_RE.pattern, examples=["fake"])
    payload: JsonValue = Field(default_factory=dict)
    queue: Annotated[QueueName, Field(json_schema_extra={"pattern": QUEUE_NAME_RE.pattern})] = (
        DEFAULT_QUEUE)
    priority: Annotated[int, Field(ge=PRIORITY_MIN, le=PRIORITY_MAX), WHOLE] = 0
    max_attempts: Annotated[int, Field(ge=1, le=MAX_ATTEMPTS_LIMIT), WHOLE] | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)

    @pydantic.field_validator("payload")
    @classmethod
    def _finite(cls, value: JsonValue) -> JsonValue:
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            raise PydanticCustomError(
                "payload_not_json", "payload must be JSON (no NaN or infinity)"
            ) from None
        return value


class Schedule(_Strict):
    """One recurring job: `cron` (5 fields, 6 with seconds first, or `@daily`-style) or
    `every_s`, in `timezone`, between `start_at` (inclusive) and `end_at` (exclusive)."""

    name: ScheduleName
    cron: CronText | None = None
    every_s: EverySeconds | None = None
    timezone: TimezoneName = DEFAULT_TIMEZONE
    job: JobTemplate
    start_at: Instant | None = None
    end_at: Instant | None = None
    paused: bool = False
    overlap: Overlap = "allow"
    catch_up: CatchUp = "latest"
    max_catch_up: Annotated[int, Field(ge=1, le=MAX_CATCH_UP_LIMIT), WHOLE] = (
        DEFAULT_MAX_CATCH_UP)

    @pydantic.model_validator(mode="after")
    def _coherent(self) -> Self:
        _one_spec(self.cron, self.every_s)
        if self.start_at is not None and self.end_at is not None and (
            self.end_at <= self.start_at
        ):
            raise PydanticCustomError("schedule_bounds", "end_at must be after start_at")
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | bytes) -> Schedule:
        """Validate a mapping or JSON text; bad input raises `conveyor.errors.ValidationError`
        (`validation_error`) with one `{"loc", "msg", "type"}` per problem in `details`."""
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ValidationError("invalid schedule", details=error_details(exc)) from None

    # --- derived --------------------------------------------------------------------------
    def timing(self) -> Timing:
        return make_timing(
            cron=self.cron, every_s=self.every_s, timezone=self.timezone,
            start_ms=None if self.start_at is None else to_ms(self.start_at),
            end_ms=None if self.end_at is None else to_ms(self.end_at),
        )

    def canonical_json(self) -> str:
        """The definition as stable JSON: equal definitions give equal text."""
        return _canonical(self.model_dump(mode="json"))

    def fingerprint(self) -> str:
        """32 hex digits of SHA-256 of the canonical JSON."""
        return _digest(self.canonical_json())

    def timing_fingerprint(self) -> str:
        """Of the fields that decide the ticks only: a replace that keeps it keeps the next
        tick; one that changes it recomputes the next tick."""
        data = self.model_dump(mode="json", include=_TIMING_FIELDS)
        return _digest(_canonical(data))

    def describe(self) -> str:
        return describe(cron=self.cron, every_s=self.every_s, timezone=self.timezone)


_TIMING_FIELDS = {"cron", "every_s", "timezone", "start_at", "end_at"}


class PreviewRequest(_Strict):
    """`POST /v1/schedules/preview`: the next `count` ticks of a spec after `after`."""

    cron: CronText | None = None
    every_s: EverySeconds | None = None
    timezone: TimezoneName = DEFAULT_TIMEZONE
    after: Instant | None = Field(default=None, description="RFC 3339; default now")
    count: Annotated[int, Field(ge=1, le=PREVIEW_MAX), WHOLE] = 5

    @pydantic.model_validator(mode="after")
    def _coherent(self) -> Self:
        _one_spec(self.cron, self.every_s)
        return self

    def timing(self) -> Timing:
        return make_timing(cron=self.cron, every_s=self.every_s, timezone=self.timezone)


def error_details(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False)
    ]


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
