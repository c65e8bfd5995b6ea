"""The SQLite broker: the embedded default, one `BEGIN IMMEDIATE` transaction per transition."""

from conveyor.brokers.sqlite.broker import SqliteBroker
from conveyor.brokers.sqlite.url import parse_sqlite_url

__all__ = ["SqliteBroker", "parse_sqlite_url"]
