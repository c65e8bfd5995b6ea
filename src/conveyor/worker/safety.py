"""Text that is safe to send to any broker: what a handler's exception says (message,
traceback, code) is bounded and has no lone surrogates (a file name from `os.fsdecode`
carries them, and neither UTF-8 JSON nor Redis can take one)."""

from __future__ import annotations

import re
import traceback

from conveyor.errors import ConveyorError, ErrorCode

TRACEBACK_LIMIT = 4096
MESSAGE_LIMIT = 1024
CODE_LIMIT = 64

_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (encodable as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def byte_size(text: str) -> int:
    """UTF-8 length of `text` (lone surrogates counted as 3 bytes, as Python would)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def truncate_tail(text: str, limit: int) -> str:
    """Keep the end of a traceback: the frame that raised is the useful part."""
    if len(text) <= limit:
        return text
    marker = "...(truncated)...\n"
    return marker + text[len(text) - (limit - len(marker)) :]


def exc_message(exc: BaseException) -> str:
    """The exception's message, bounded and safe; never raises (a broken `__str__` too)."""
    try:
        text = exc.message if isinstance(exc, ConveyorError) else str(exc)
        text = text if isinstance(text, str) else repr(text)
    except Exception as inner:
        text = f"<str() of {type(exc).__name__} failed: {type(inner).__name__}>"
    text = safe_text(text or type(exc).__name__)
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def exc_traceback(exc: BaseException) -> str:
    """The formatted traceback (or the one a handler process sent), bounded and safe."""
    remote = getattr(exc, "remote_traceback", None)
    try:
        text = remote if isinstance(remote, str) else "".join(traceback.format_exception(exc))
    except Exception:
        text = f"{type(exc).__name__} (traceback could not be formatted)"
    return safe_text(truncate_tail(text, TRACEBACK_LIMIT))


def exc_code(exc: BaseException) -> str:
    """The stable code an exception carries (handler_error unless it says otherwise)."""
    code = exc.code if isinstance(exc, ConveyorError) else ErrorCode.HANDLER_ERROR
    text = safe_text(str(code))[:CODE_LIMIT]
    return text or str(ErrorCode.HANDLER_ERROR)
