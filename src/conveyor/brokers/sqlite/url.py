"""`sqlite:///` broker URLs, in the SQLAlchemy convention: three slashes then the path, so a
fourth slash makes it absolute."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from conveyor.errors import ValidationError


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """`sqlite:///rel/path.db` (relative), `sqlite:////abs/path.db` (absolute), with optional
    `?synchronous=full`. Returns (path, options)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc or not parts.path.startswith("/"):
        raise ValidationError(
            f"invalid SQLite URL {url!r}: expected sqlite:///relative/path.db or"
            " sqlite:////absolute/path.db",
            details={"field": "broker_url"},
        )
    path = unquote(parts.path[1:])
    if not path or path == ":memory:":
        raise ValidationError(
            f"invalid SQLite URL {url!r}: a file path is required (several processes and"
            " connections share the file; an in-memory database cannot be shared)",
            details={"field": "broker_url"},
        )
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return path, options
