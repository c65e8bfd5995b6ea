"""Which broker a command talks to: said on every command (password redacted), checked before
anything connects (a URL that does not parse is a usage error), and, for commands that only
read or change existing jobs, a SQLite file that does not exist is an error instead of a new
empty `./conveyor.db` in whatever directory the command ran from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from conveyor.brokers import broker_from_settings
from conveyor.brokers.base import Broker
from conveyor.brokers.sqlite.url import parse_sqlite_url
from conveyor.errors import BrokerUnavailable, ConveyorError, ValidationError
from conveyor.settings import Settings

_SECRET_PARAMS = frozenset({"password", "pass", "pwd", "token"})
_MASK = "***"


def redact_url(url: str) -> str:
    """The URL with its password (userinfo or `?password=`) replaced by `***`; the rest of
    it exactly as given."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@]*@", f"//{_MASK}@", url)
    out = url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        masked = f"{user}:{_MASK}@{hostport}" if colon else f"{_MASK}@{hostport}"
        out = out.replace(parts.netloc, masked, 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, _MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*"
            )
            out = out.replace(f"?{parts.query}", f"?{query}", 1)
    return out


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    url: str  # redacted
    kind: str  # "redis" or "sqlite"
    key_prefix: str | None = None  # Redis only: SQLite keeps one namespace per file
    path: str | None = None  # SQLite only: the file, absolute

    def line(self) -> str:
        where = f"key prefix {self.key_prefix}" if self.key_prefix else str(self.path)
        return f"broker: {self.url} ({where})"

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"url": self.url, "kind": self.kind}
        if self.key_prefix is not None:
            doc["key_prefix"] = self.key_prefix
        if self.path is not None:
            doc["path"] = self.path
        return doc


def _sqlite_path(url: str) -> Path | None:
    if not url.lower().startswith("sqlite:"):
        return None
    path, _options = parse_sqlite_url(url)
    return Path(path).absolute()


def describe(settings: Settings) -> BrokerInfo:
    url = settings.broker_url
    path = _sqlite_path(url)
    if path is not None:
        return BrokerInfo(redact_url(url), "sqlite", path=str(path))
    return BrokerInfo(redact_url(url), "redis", key_prefix=settings.key_prefix)


def build_broker(settings: Settings) -> Broker:
    """The broker of `settings`, not connected yet; a URL that does not parse (a port that is
    not a number, a broken IPv6 address, ...) is a ValidationError naming the setting."""
    try:
        return broker_from_settings(settings)
    except ConveyorError:
        raise
    except ValueError as exc:
        raise ValidationError(
            f"invalid broker URL {redact_url(settings.broker_url)!r}"
            f" (--broker-url or CONVEYOR_BROKER_URL): {exc}",
            details={"field": "broker_url"},
        ) from None


def require_existing(info: BrokerInfo) -> None:
    """Commands that read or change existing jobs never create the SQLite file."""
    if info.path is not None and not Path(info.path).exists():
        raise BrokerUnavailable(
            f"no SQLite broker at {info.path}: the file does not exist. Point --broker-url"
            " or CONVEYOR_BROKER_URL at your broker; conveyor dev, worker, api, enqueue and"
            " seed create the file",
            details={"path": info.path},
        )
