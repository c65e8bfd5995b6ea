"""Structured logging, one event per line, rendered by structlog: JSON for machines, coloured
`key=value` text for a terminal (`auto` picks by whether the stream is a TTY), and the job
context that stamps `job_id` and `job_type` on every line logged while a job runs.

Every logger of the process (Conveyor's, uvicorn's, redis-py's, a handler's) goes through the
one root handler `configure_logging` installs, so all lines look alike. Conveyor's own code
keeps logging through the stdlib (`get_logger`, `extra={...}`); structlog's
`ProcessorFormatter` renders those records.

A record logged with an exception carries `exc_type` (its class) in both formats; JSON adds
`exc` (the traceback). Text prints the traceback under the line only for ERROR and above, so
a failed job (a WARNING whose traceback is in the job's history) stays one line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any, Literal, TextIO

from structlog.dev import (
    Column,
    ConsoleRenderer,
    KeyValueColumnFormatter,
    LogLevelColumnFormatter,
    plain_traceback,
)
from structlog.processors import JSONRenderer
from structlog.stdlib import ProcessorFormatter
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["auto", "json", "text"]
LOG_FORMATS: tuple[str, ...] = ("auto", "json", "text")

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_CORE_KEYS = ("ts", "level", "logger", "event")
# Attributes every LogRecord has: anything else on a record came from `extra` or a filter.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
#: extras that only repeat the message: uvicorn's ANSI-coloured copy of each line
_DROPPED = frozenset({"color_message"})
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


# --- processors ----------------------------------------------------------------------------

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _timestamp(record: logging.LogRecord) -> str:
    dt = datetime.fromtimestamp(record.created, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _from_record(_logger: WrappedLogger, _name: str, ed: EventDict) -> EventDict:
    """A stdlib record as a flat event: core keys first, then extras (renamed if they
    clash), then what the exception processor needs."""
    record: logging.LogRecord = ed["_record"]
    out: EventDict = {
        "ts": _timestamp(record), "level": record.levelname, "logger": record.name,
        "event": ed["event"],
    }
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRS or key in _DROPPED or key.startswith("_"):
            continue
        out[f"extra_{key}" if key in _CORE_KEYS else key] = value
    if "exc_info" in ed:
        out["exc_info"] = ed["exc_info"]
    elif record.exc_text:  # formatted by another handler's formatter first
        out["exc"] = record.exc_text
    if "stack_info" in ed:
        out["stack_info"] = ed["stack_info"]
    out["_record"], out["_from_structlog"] = record, ed.get("_from_structlog", False)
    return out


def _exc_info(value: Any) -> ExcInfo | None:
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and value[0] is not None:
        return value
    if value is True:
        current = sys.exc_info()
        return current if current[0] is not None else None
    return None


def _class_name(cls: type[BaseException]) -> str:
    name = cls.__qualname__
    return name if cls.__module__ == "builtins" else f"{cls.__module__}.{name}"


def _exceptions(*, traceback_in: Literal["json", "text"]) -> Processor:
    """`exc_info` becomes `exc_type`, plus the traceback: `exc` in JSON; printed under the
    line by the console renderer in text, for ERROR and above only."""

    def process(_logger: WrappedLogger, _name: str, ed: EventDict) -> EventDict:
        info = _exc_info(ed.pop("exc_info", None))
        stack = ed.pop("stack_info", None)
        if info is not None:
            ed["exc_type"] = _class_name(info[0])
            if traceback_in == "json":
                ed["exc"] = "".join(traceback.format_exception(*info)).rstrip("\n")
            elif logging.getLevelName(str(ed.get("level", "INFO"))) >= logging.ERROR:
                ed["exc_info"] = info
        if stack:
            ed["stack"] = str(stack)
        return ed

    return process


def _strict_json(value: Any) -> Any:
    """A value json.dumps accepts strictly; a log call must never fail on a weird extra."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        json.dumps(value, allow_nan=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
    return value


def _dumps(event: EventDict, **_kw: Any) -> str:
    try:
        return json.dumps(event, ensure_ascii=False, allow_nan=False, default=str)
    except (TypeError, ValueError, RecursionError):
        safe = {key: _strict_json(value) for key, value in event.items()}
        return json.dumps(safe, ensure_ascii=False, allow_nan=False, default=str)


def _text_value(value: object) -> str:
    """A string bare when it is one token, else JSON-quoted; anything else as compact JSON
    (quoted only if it holds whitespace), so a value never spans two tokens or two lines."""
    if isinstance(value, str):
        text, quote = value, not value or any(ch.isspace() or ch in '"=' for ch in value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
        quote = any(ch.isspace() for ch in text)
    return json.dumps(text, ensure_ascii=False) if quote else text


def _one_line_event(_logger: WrappedLogger, _name: str, ed: EventDict) -> EventDict:
    ed["event"] = str(ed.get("event", "")).replace("\r", "\\r").replace("\n", "\\n")
    return ed


def _console(colors: bool) -> ConsoleRenderer:
    """`<ts> [LEVEL   ] <logger>: <event> key=value ...`, coloured on a terminal."""
    styles = ConsoleRenderer.get_default_column_styles(colors)
    levels = {
        name.upper(): style + styles.bright
        for name, style in ConsoleRenderer.get_default_level_styles(colors).items()
        if name.upper() in _LEVELS
    }
    columns = [
        Column("ts", KeyValueColumnFormatter(None, styles.timestamp, styles.reset, str)),
        Column("level", LogLevelColumnFormatter(levels, styles.reset)),
        Column("logger", KeyValueColumnFormatter(
            None, styles.logger_name, styles.reset, str, postfix=":")),
        Column("event", KeyValueColumnFormatter(None, styles.bright, styles.reset, str)),
        Column("", KeyValueColumnFormatter(
            styles.kv_key, styles.kv_value, styles.reset, _text_value)),
    ]
    return ConsoleRenderer(columns=columns, sort_keys=False, exception_formatter=plain_traceback)


def wants_color(stream: TextIO) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    return _is_tty(stream) and not os.environ.get("NO_COLOR")


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def resolve_format(fmt: str, stream: TextIO) -> Literal["json", "text"]:
    """`auto` is text on a terminal and JSON anywhere else (a file, a pipe, a collector)."""
    if fmt == "auto":
        return "text" if _is_tty(stream) else "json"
    return "text" if fmt == "text" else "json"


def build_formatter(fmt: Literal["json", "text"], *, colors: bool = False) -> logging.Formatter:
    if fmt == "json":
        return ProcessorFormatter(
            processors=[_exceptions(traceback_in="json"),
                        ProcessorFormatter.remove_processors_meta, JSONRenderer(_dumps)],
            foreign_pre_chain=[_from_record],
        )
    return ProcessorFormatter(
        processors=[_exceptions(traceback_in="text"), _one_line_event,
                    ProcessorFormatter.remove_processors_meta, _console(colors)],
        foreign_pre_chain=[_from_record],
    )


# --- set-up --------------------------------------------------------------------------------


class _ConveyorHandler(logging.StreamHandler[TextIO]):
    """Marks the one handler configure_logging owns, so calling it again replaces it."""


def configure_logging(
    level: str = "INFO", fmt: str = "auto", *, stream: TextIO | None = None
) -> Literal["json", "text"]:
    """Send every logger's records (root) to one stream handler in the chosen format
    (`auto`, `json` or `text`); returns the format in use.

    Idempotent: a second call replaces the handler it installed and leaves others alone.
    """
    level_name = level.upper()
    if level_name not in _LEVELS:
        raise ValueError(f"invalid log level {level!r}: use one of {', '.join(_LEVELS)}")
    if fmt not in LOG_FORMATS:
        raise ValueError(f"invalid log format {fmt!r}: use {', '.join(LOG_FORMATS)}")
    out = stream if stream is not None else sys.stderr
    resolved = resolve_format(fmt, out)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ConveyorHandler)]:
        root.removeHandler(old)
        old.close()
    handler = _ConveyorHandler(out)
    handler.setFormatter(build_formatter(resolved, colors=resolved == "text" and wants_color(out)))
    handler.addFilter(JobContextFilter())
    root.addHandler(handler)
    root.setLevel(level_name)
    return resolved
