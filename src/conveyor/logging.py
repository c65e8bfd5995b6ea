"""Structured logging, one event per line (JSON or key=value text), and the job context that
stamps `job_id` and `job_type` on every line logged while a job runs, whatever the logger.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TextIO

LogFormat = Literal["json", "text"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_CORE_KEYS = ("ts", "level", "logger", "event")
# Attributes every LogRecord has: anything else on a record came from `extra` or a filter.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_EMPTY: Mapping[str, Any] = MappingProxyType({})

_job_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "conveyor_job_fields", default=_EMPTY
)


# --- job context ---------------------------------------------------------------------------


def bind_job(job_id: str, job_type: str, **fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Bind job fields to the current context; pass the token to `unbind_job` to undo.

    A contextvar (not a thread-local) so asyncio tasks and `asyncio.to_thread` /
    `ctx.run` executor calls each see the job they belong to.
    """
    merged = {**_job_fields.get(), "job_id": job_id, "job_type": job_type, **fields}
    return _job_fields.set(MappingProxyType(merged))


def unbind_job(token: contextvars.Token[Mapping[str, Any]]) -> None:
    _job_fields.reset(token)


@contextmanager
def job_context(job_id: str, job_type: str, **fields: Any) -> Iterator[Mapping[str, Any]]:
    """`with job_context(job.id, job.type, attempt=2): ...` — every line inside carries them."""
    token = bind_job(job_id, job_type, **fields)
    try:
        yield _job_fields.get()
    finally:
        unbind_job(token)


def current_job_fields() -> Mapping[str, Any]:
    return _job_fields.get()


class JobContextFilter(logging.Filter):
    """Copies the bound job fields onto each record, in the emitting thread (where the
    contextvar is right). Explicit `extra` values win. Add it to any handler of your own."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _job_fields.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JobLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger bound to fixed fields that, unlike the stock adapter, keeps call-site extras."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


# --- formatting ----------------------------------------------------------------------------


def _timestamp(record: logging.LogRecord) -> str:
    dt = datetime.fromtimestamp(record.created, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """The event as a flat dict: core keys first, then extras (renamed if they clash)."""
    out: dict[str, Any] = {
        "ts": _timestamp(record),
        "level": record.levelname,
        "logger": record.name,
        "event": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRS or key.startswith("_"):
            continue
        out[f"extra_{key}" if key in _CORE_KEYS else key] = value
    if record.exc_info:
        out["exc"] = formatter.formatException(record.exc_info)
    elif record.exc_text:
        out["exc"] = record.exc_text
    if record.stack_info:
        out["stack"] = formatter.formatStack(record.stack_info)
    return out


def _safe_value(value: Any) -> Any:
    """A value json.dumps accepts strictly; a log call must never fail on a weird extra."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        json.dumps(value, allow_nan=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts` (RFC 3339 UTC, ms), `level`, `logger`, `event`, extras."""

    def format(self, record: logging.LogRecord) -> str:
        data = _fields(record, self)
        try:
            return json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
        except (TypeError, ValueError, RecursionError):
            safe = {key: _safe_value(value) for key, value in data.items()}
            return json.dumps(safe, ensure_ascii=False, allow_nan=False, default=str)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(ch.isspace() or ch in '"=' for ch in text):
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, newlines escaped: one line per event


class TextFormatter(logging.Formatter):
    """`<ts> <LEVEL> <logger>: <event> key=value ...` on a single line."""

    def format(self, record: logging.LogRecord) -> str:
        data = _fields(record, self)
        event = data.pop("event")
        head = f"{data.pop('ts')} {data.pop('level'):<8} {data.pop('logger')}: "
        head += str(event).replace("\n", "\\n")
        tail = " ".join(f"{key}={_text_value(value)}" for key, value in data.items())
        return f"{head} {tail}" if tail else head


# --- set-up --------------------------------------------------------------------------------


class _ConveyorHandler(logging.StreamHandler[TextIO]):
    """Marks the one handler configure_logging owns, so calling it again replaces it."""


def configure_logging(
    level: str = "INFO", fmt: str = "json", *, stream: TextIO | None = None
) -> None:
    """Send every logger's records (root) to one stream handler in the chosen format.

    Idempotent: a second call replaces the handler it installed and leaves others alone.
    """
    level_name = level.upper()
    if level_name not in _LEVELS:
        raise ValueError(f"invalid log level {level!r}: use one of {', '.join(_LEVELS)}")
    if fmt not in ("json", "text"):
        raise ValueError(f"invalid log format {fmt!r}: use json or text")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ConveyorHandler)]:
        root.removeHandler(old)
        old.close()
    handler = _ConveyorHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(JobContextFilter())
    root.addHandler(handler)
    root.setLevel(level_name)
