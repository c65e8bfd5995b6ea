"""Click parameter types for Conveyor's values, checked before any connection is made, so a
bad duration, payload, timestamp, queue name or job id is a usage error (exit 2).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from conveyor.errors import ValidationError
from conveyor.ids import split_job_id
from conveyor.queues import parse_queue_list, validate_queue_name
from conveyor.timeutil import parse_duration_s


class Duration(click.ParamType[float]):
    """`250ms`, `5s`, `1.5m`, `2h`, `1d` or bare seconds; converted to float seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration_s(str(value))
        except ValidationError as exc:
            self.fail(exc.message, param, ctx)


class JsonValue(click.ParamType[Any]):
    """A JSON document, given inline, as `@path` to read a file, or `@-` to read stdin."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        text = value
        if value.startswith("@"):
            source = value[1:]
            try:
                if source == "-":
                    text = sys.stdin.read()
                else:
                    text = Path(source).read_text(encoding="utf-8")
            except OSError as exc:
                self.fail(f"cannot read {source!r}: {exc.strerror or exc}", param, ctx)
        try:
            return json.loads(text)
        except ValueError as exc:
            self.fail(f"invalid JSON: {exc}", param, ctx)
        except RecursionError:
            self.fail("invalid JSON: nested too deeply", param, ctx)


class ZonedDatetime(click.ParamType[datetime]):
    """An ISO 8601 timestamp that names its zone (`2026-01-01T09:00:00Z`, `...+02:00`)."""

    name = "timestamp"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value))
            except ValueError:
                self.fail(f"{value!r} is not an ISO 8601 timestamp", param, ctx)
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            self.fail(f"{value!r} has no time zone (add Z or an offset like +02:00)", param, ctx)
        return parsed


class QueueName(click.ParamType[str]):
    name = "queue"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return validate_queue_name(value)
        except ValidationError as exc:
            self.fail(exc.message, param, ctx)


class QueueList(click.ParamType[list[str]]):
    """`a,b,c` as a de-duplicated list of valid queue names."""

    name = "queues"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        try:
            return parse_queue_list(str(value))
        except ValidationError as exc:
            self.fail(exc.message, param, ctx)


class JobId(click.ParamType[str]):
    name = "job_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            split_job_id(value)
        except ValidationError as exc:
            self.fail(exc.message, param, ctx)
        return value


DURATION = Duration()
JSON = JsonValue()
ZONED_DATETIME = ZonedDatetime()
QUEUE = QueueName()
QUEUE_LIST = QueueList()
JOB_ID = JobId()
