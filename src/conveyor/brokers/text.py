"""Strings on their way into a broker: always valid UTF-8, and bounded.

A Python `str` may hold lone surrogates (`os.fsdecode` of a file name that is not UTF-8, or
`errors="surrogateescape"` anywhere), which no UTF-8 encoder accepts: one such error message
made a whole batch of outcomes unsendable, on both brokers. Every string a broker stores
passes through here first, so one odd value can only ever change its own text.
"""

from __future__ import annotations

#: longest error message stored (its start is kept: the message reads from the left)
MESSAGE_LIMIT = 16 * 1024
#: longest traceback stored (its end is kept: the frame that raised is the useful part)
TRACEBACK_LIMIT = 64 * 1024
#: longest worker id / actor name stored
NAME_LIMIT = 256
_CUT = "...(truncated)..."


def safe_text(text: str, limit: int | None = None, *, keep_end: bool = False) -> str:
    """`text` as valid UTF-8: each lone surrogate becomes its escape (`\\udce9`, so the byte
    it stood for stays readable), then cut to `limit` characters."""
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode()
    if limit is not None and len(text) > limit:
        keep = max(limit - len(_CUT), 0)
        text = _CUT + text[len(text) - keep:] if keep_end else text[:keep] + _CUT
    return text


def safe_json(text: str) -> str:
    """A JSON text as valid UTF-8: lone surrogates become U+FFFD (an escape would be a lone
    surrogate escape, which JSON parsers refuse), so the text still parses."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def safe_name(name: str) -> str:
    return safe_text(name, NAME_LIMIT)


def safe_message(message: str) -> str:
    return safe_text(message, MESSAGE_LIMIT)


def safe_traceback(tb: str) -> str:
    return safe_text(tb, TRACEBACK_LIMIT, keep_end=True)
