"""One SQLite connection owned by one thread, with the transaction helpers every call uses.

A whole transaction (a plain function of the connection) runs on that thread in one hop, so
it never spans an `await`, and the event loop never blocks on a file lock: SQLite's busy
handler waits for another process's write lock on the connection's thread instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from conveyor.errors import BrokerMisconfigured, BrokerUnavailable


class EventsConnection(sqlite3.Connection):
    """A connection that knows its broker's event-log bound (read by `events.emit`)."""

    events_maxlen: int = 100_000

T = TypeVar("T")
Tx = Callable[[sqlite3.Connection], T]


def now_ms() -> int:
    """The one clock. SQLite has no server clock: every process sharing a file runs on one
    host (the file must be local: SQLite's locks are unsafe on network file systems), so
    that host's wall clock is the broker's clock. Read inside the transaction."""
    return time.time_ns() // 1_000_000


def _map_error(exc: sqlite3.Error, path: str) -> Exception:
    if isinstance(exc, sqlite3.OperationalError):  # locked past busy_timeout, I/O, can't open
        return BrokerUnavailable(f"SQLite database {path!r} is unavailable: {exc}")
    if type(exc) is sqlite3.DatabaseError:  # "file is not a database", a damaged file
        return BrokerMisconfigured(f"{path!r} is not a usable SQLite database: {exc}")
    return exc


class Database:
    def __init__(self, path: str, *, busy_timeout_ms: int, synchronous: str, name: str,
                 events_maxlen: int | None = None) -> None:
        self.path = path
        #: the event-log bound the connection carries to `events.emit` (None: its default)
        self._events_maxlen = events_maxlen
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

    async def call(self, fn: Tx[T]) -> T:
        """Run `fn(connection)` on the connection's thread; map SQLite errors to ours."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._invoke, fn)

    async def write(self, fn: Tx[T]) -> T:
        """Run `fn` as one `BEGIN IMMEDIATE` transaction: it holds the write lock from its
        first statement, so no other writer can slip in between its reads and its writes."""
        return await self.call(partial(_in_tx, begin="BEGIN IMMEDIATE", fn=fn))

    def write_blocking(self, fn: Tx[T]) -> T:
        """`write` for a caller off any event loop (the sync enqueuer): the same transaction
        on the same thread, waited for by blocking the caller."""
        return self._pool.submit(
            self._invoke, partial(_in_tx, begin="BEGIN IMMEDIATE", fn=fn)).result()

    async def read(self, fn: Tx[T]) -> T:
        """Run `fn` in one read transaction: a consistent snapshot (WAL), taking no lock that
        blocks writers."""
        return await self.call(lambda conn: _in_tx(conn, "BEGIN", fn))

    def _invoke(self, fn: Tx[T]) -> T:
        conn = self._conn
        if conn is None:
            raise BrokerUnavailable(f"SQLite database {self.path!r} is not open")
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            raise _map_error(exc, self.path) from exc

    async def open(self) -> None:
        if self._conn is None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._open)

    def _open(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False,
                timeout=self._busy_timeout_ms / 1000, factory=EventsConnection,
            )
            if self._events_maxlen is not None:
                conn.events_maxlen = self._events_maxlen
        except sqlite3.Error as exc:
            raise _map_error(exc, self.path) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise BrokerMisconfigured(
                    f"SQLite database {self.path!r} cannot use WAL mode (got {mode!r})",
                    details={"journal_mode": mode},
                )
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise _map_error(exc, self.path) from exc
            raise
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
        # a fresh (thread-less until used) pool: later calls fail as BrokerUnavailable and
        # `open` may connect again
        old, self._pool = self._pool, ThreadPoolExecutor(1, thread_name_prefix=self._name)
        old.shutdown(wait=False)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _in_tx(conn: sqlite3.Connection, begin: str, fn: Tx[T]) -> T:
    conn.execute(begin)
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result
