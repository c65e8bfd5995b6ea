"""Job logs: the lines a handler writes through `ctx.logger`, kept with the job.

A line is stored as compact JSON `{"at": <epoch ms>, "level", "attempt", "msg"}`; a job
keeps its last `MAX_LINES` lines and at most `MAX_BYTES` of them (the broker trims, oldest
first), and they are deleted with the job. `JobLogger` is what `ctx.logger` is on a worker:
a `logging.LoggerAdapter` over the process's `conveyor.job` logger (so the lines still go to
the worker's own log) that also keeps every line at `CAPTURE_LEVEL` or above in a
`LogBuffer`, which the worker's log shipper empties into the broker about once a second.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: what a job keeps: its last lines, within both bounds
MAX_LINES = 200
MAX_BYTES = 64 * 1024
#: one line's message is cut to this many characters (a traceback included), keeping its
#: head and its tail (where a traceback names the error)
MAX_MESSAGE_CHARS = 2000
#: lines a buffer holds between flushes; older ones are dropped first (the broker would
#: drop them anyway: only the last MAX_LINES are kept)
BUFFER_LINES = MAX_LINES
#: lines at this level or above are kept with the job, whatever the process's log level
CAPTURE_LEVEL = logging.INFO
_CUT = " [...]"


class LogLine(BaseModel):
    """One kept line, as `GET /v1/jobs/{id}/logs` shows it."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    at: datetime = Field(description="when the handler wrote it (the worker's clock)")
    level: str = Field(description="`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`")
    attempt: int = Field(ge=0, description="the delivery that wrote it (1-based)")
    message: str


class JobLogs(BaseModel):
    """`GET /v1/jobs/{id}/logs`."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    job_id: str
    lines: list[LogLine]


def encode_line(at_ms: int, level: str, attempt: int, message: str) -> str:
    # a lone surrogate (text decoded with surrogateescape) could not be stored as UTF-8
    message = message.encode("utf-8", "replace").decode("utf-8")
    if len(message) > MAX_MESSAGE_CHARS:
        keep = (MAX_MESSAGE_CHARS - len(_CUT)) // 2
        message = message[:keep] + _CUT + message[-keep:]
    return json.dumps({"at": at_ms, "level": level, "attempt": attempt, "msg": message},
                      separators=(",", ":"), ensure_ascii=False)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def decode_lines(raw: Iterable[str | bytes]) -> list[LogLine]:
    """Stored lines back as `LogLine`s; one that does not parse reads as an `ERROR` line
    saying so (records read back are checked; one bad line never hides the others)."""
    out = []
    for item in raw:
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        try:
            doc = json.loads(text)
            at, level, attempt, msg = doc["at"], doc["level"], doc["attempt"], doc["msg"]
            if not (isinstance(at, int) and isinstance(level, str) and isinstance(msg, str)
                    and isinstance(attempt, int) and attempt >= 0 and 0 <= at < 2**53):
                raise ValueError("a field has the wrong type")
            out.append(LogLine(at=_at(at), level=level[:16], attempt=attempt,
                               message=msg))
        except (ValueError, TypeError, KeyError, OverflowError):
            out.append(LogLine(at=_at(0), level="ERROR", attempt=0,
                               message=f"(a stored log line does not parse: {text[:100]!r})"))
    return out


class LogBuffer:
    """The lines of one delivery not yet sent to the broker. Thread-safe: a sync handler
    logs from a pool thread while the shipper drains on the loop."""

    __slots__ = ("_lines", "_lock", "attempt", "dropped", "job_id", "token")

    def __init__(self, job_id: str, token: str, attempt: int) -> None:
        self.job_id = job_id
        self.token = token
        self.attempt = attempt
        self._lines: list[str] = []
        self._lock = threading.Lock()
        #: lines dropped because the buffer was full between two flushes
        self.dropped = 0

    def add(self, level: str, message: str, at_ms: int | None = None) -> None:
        at = time.time_ns() // 1_000_000 if at_ms is None else at_ms
        line = encode_line(at, level, self.attempt, message)
        with self._lock:
            self._lines.append(line)
            if len(self._lines) > BUFFER_LINES:
                del self._lines[0]
                self.dropped += 1

    def extend(self, lines: list[str]) -> None:
        """Lines already encoded (a process-isolated handler's, sent back by its child)."""
        with self._lock:
            self._lines.extend(lines)
            extra = len(self._lines) - BUFFER_LINES
            if extra > 0:
                del self._lines[:extra]
                self.dropped += extra

    def take(self) -> list[str]:
        with self._lock:
            lines, self._lines = self._lines, []
        return lines

    def __len__(self) -> int:
        return len(self._lines)


class JobLogger(logging.LoggerAdapter[logging.Logger]):
    """`ctx.logger` on a worker: logs like the `conveyor.job` logger (the worker's own log
    keeps every line), and keeps lines at CAPTURE_LEVEL or above in the job's buffer.

    `buffer` is a `LogBuffer`, or a function that gives one on the first kept line (None:
    the job is over, the line goes to the process log only), so a job that logs nothing
    costs no buffer."""

    def __init__(self, logger: logging.Logger,
                 buffer: LogBuffer | Callable[[], LogBuffer | None]) -> None:
        # what LoggerAdapter.__init__ does, without its cost: one of these is made per job
        self.logger = logger
        self.extra = {}
        self._buffer = buffer

    @property
    def buffer(self) -> LogBuffer | None:
        """The buffer (opened now if it was not yet)."""
        buf = self._buffer
        if isinstance(buf, LogBuffer):
            return buf
        opened = buf()
        if opened is not None:
            self._buffer = opened
        return opened

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if level >= CAPTURE_LEVEL and (buf := self.buffer) is not None:
            buf.add(logging.getLevelName(level), _render(msg, args, kwargs))
        if self.logger.isEnabledFor(level):
            self.logger.log(level, msg, *args, **kwargs)

    # LoggerAdapter's helpers call `self.log` only since Python 3.13 for some of them: route
    # every one through `log` so none bypasses the buffer
    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=exc_info, **kwargs)

    def critical(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.CRITICAL, msg, *args, **kwargs)


def _render(msg: object, args: tuple[object, ...], kwargs: MutableMapping[str, Any]) -> str:
    """The message as logging would render it (`%` arguments), with the traceback of
    `exc_info` appended, as a handler's own log would show it."""
    try:
        text = str(msg) % args if args else str(msg)
    except (TypeError, ValueError):
        text = f"{msg} {args!r}"
    exc_info = kwargs.get("exc_info")
    if exc_info:
        if isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        elif not isinstance(exc_info, tuple):
            import sys

            exc_info = sys.exc_info()
        if exc_info[0] is not None:
            text += "\n" + logging.Formatter().formatException(exc_info)
    return text
