"""A tiny TCP proxy the chaos tests put between one worker and Redis, to fake a bad network.

It runs its own asyncio loop on a thread, so it keeps forwarding whatever the test's loop is
doing. Modes: forward bytes, drop them (a partition: connections stay open, nothing passes),
or delay them. `cut()` resets every open connection. `cut_after(...)` lets the next request
containing given bytes reach Redis and resets its connection before the reply is relayed;
with `reply=True` it swallows the next reply containing them instead. Either way the script
ran and its caller never learns the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 65536
CONTROL_TIMEOUT_S = 5.0
#: How long a trapped request waits for Redis to start replying before the reset.
REPLY_WAIT_S = 2.0


class Mode(StrEnum):
    FORWARD = "forward"
    DROP = "drop"
    DELAY = "delay"


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    cutting: bool = False
    #: a trapped request went upstream: its reply is swallowed, then the link is reset
    trapped: bool = False
    reply_seen: asyncio.Event = field(default_factory=asyncio.Event)

    def abort(self) -> None:
        self.cutting = True
        for writer in (self.client, self.upstream):
            writer.transport.abort()  # RST: the peer sees a reset at once, not a slow close


@dataclass(eq=False)
class _Trap:
    markers: tuple[bytes, ...]
    reply: bool
    remaining: int

    def matches(self, data: bytes, *, upstream: bool) -> bool:
        return (
            self.remaining > 0 and upstream != self.reply
            and all(m in data for m in self.markers)
        )


@dataclass
class ProxyStats:
    connections: int = 0
    cuts: int = 0
    scripted_cuts: int = 0
    dropped_bytes: int = 0


@dataclass(eq=False)
class ChaosProxy:
    upstream_host: str
    upstream_port: int
    host: str = "127.0.0.1"
    port: int = 0
    mode: Mode = Mode.FORWARD
    delay_s: float = 0.0
    stats: ProxyStats = field(default_factory=ProxyStats)
    _links: set[_Link] = field(default_factory=set)
    _trap: _Trap | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    # --- lifecycle (called from the test's thread) ------------------------------------------

    def start(self) -> ChaosProxy:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="chaos-proxy",
                                        daemon=True)
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CONTROL_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    # --- faults (called from the test's thread) ---------------------------------------------

    def forward(self) -> None:
        self._set(Mode.FORWARD, 0.0)

    def drop(self) -> None:
        """Partition: bytes in both directions are discarded; connections stay open."""
        self._set(Mode.DROP, 0.0)

    def delay(self, seconds: float) -> None:
        """Every chunk, both directions, is held `seconds` before it is passed on."""
        self._set(Mode.DELAY, seconds)

    def cut(self) -> int:
        """Reset every open connection; returns how many were cut."""
        return self._call(self._cut_all())

    def heal(self) -> int:
        """End a partition: forward again and reset every connection, in one step on the
        proxy's loop (a stream that lost bytes would pair requests with the wrong replies)."""
        return self._call(self._heal())

    def cut_after(self, *markers: bytes, reply: bool = False, times: int = 1) -> None:
        """Arm a trap for the next `times` requests containing every marker: each reaches
        Redis, then its connection is reset before the reply is relayed. `reply=True`: the
        trap is a reply containing every marker, swallowed, then the connection reset."""
        self._call(self._arm(_Trap(markers, reply, times)))

    def trap_pending(self) -> int:
        trap = self._trap
        return trap.remaining if trap is not None else 0

    # --- internals (on the proxy's loop) ----------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "proxy not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONTROL_TIMEOUT_S)

    def _set(self, mode: Mode, delay_s: float) -> None:
        async def apply() -> None:
            self.mode, self.delay_s = mode, delay_s

        self._call(apply())

    async def _arm(self, trap: _Trap) -> None:
        self._trap = trap

    def _spring(self, trap: _Trap) -> None:
        trap.remaining -= 1
        if trap.remaining <= 0:
            self._trap = None
        self.stats.scripted_cuts += 1

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut_all()

    async def _heal(self) -> int:
        self.mode, self.delay_s = Mode.FORWARD, 0.0
        return await self._cut_all()

    async def _cut_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.abort()
        self._links.clear()
        self.stats.cuts += len(links)
        return len(links)

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            c_writer.transport.abort()
            return
        link = _Link(c_writer, u_writer)
        self._links.add(link)
        self.stats.connections += 1
        await asyncio.gather(
            self._pump(link, c_reader, u_writer, upstream=True),
            self._pump(link, u_reader, c_writer, upstream=False),
        )

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        *, upstream: bool,
    ) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data or link.cutting:
                    break
                if not upstream and link.trapped:
                    link.reply_seen.set()  # the script ran; its caller never sees the reply
                    break
                if self.mode is Mode.DROP:
                    self.stats.dropped_bytes += len(data)
                    continue
                if self.mode is Mode.DELAY and self.delay_s > 0:
                    await asyncio.sleep(self.delay_s)
                    if link.cutting:
                        break
                trap = self._trap
                if trap is not None and trap.matches(data, upstream=upstream):
                    self._spring(trap)
                    link.trapped = True
                    if not upstream:
                        break  # the reply is swallowed; the link is reset below
                    writer.write(data)
                    await writer.drain()
                    # Reset only once the reply starts to come back: Redis has then read
                    # and run the request (a reset could otherwise discard it unread).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(link.reply_seen.wait(), REPLY_WAIT_S)
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(link)
            link.abort()
