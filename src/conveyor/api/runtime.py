"""What the routes share: the client, and its connection, made on first need.

The API is stateless; this holds only the client. It connects at start-up when it can, but
a broker that is down then is not fatal: every request tries again (and answers 503 while it
fails), so the API may start before Redis and recovers by itself.
"""

from __future__ import annotations

import asyncio

from conveyor.client import AsyncConveyor


class ApiRuntime:
    def __init__(self, client: AsyncConveyor, *, owns_client: bool) -> None:
        self.client = client
        self.owns_client = owns_client
        self._connected = False
        self._lock = asyncio.Lock()

    async def ready(self) -> AsyncConveyor:
        """The client, connected (and the broker's safety checks passed); raises
        `BrokerUnavailable` / `BrokerMisconfigured` otherwise."""
        if not self._connected:
            async with self._lock:
                if not self._connected:
                    await self.client.connect()
                    self._connected = True
        return self.client

    async def close(self) -> None:
        if self.owns_client:
            await self.client.close()
        self._connected = False
