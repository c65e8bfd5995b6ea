"""`conveyor dev`: the API, a worker and its maintenance in one process on one broker (the
embedded SQLite file unless CONVEYOR_BROKER_URL says otherwise), for a laptop.

One broker object serves both sides, so on SQLite an enqueue through the API wakes the
worker in-process at once. Ctrl-C (or SIGTERM) stops the server and drains the worker like
`conveyor worker` does; a second Ctrl-C releases running jobs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Generator

import uvicorn

from conveyor.api import create_app
from conveyor.api.server import server_options
from conveyor.client import AsyncConveyor
from conveyor.errors import BrokerMisconfigured, BrokerUnavailable
from conveyor.handlers import default_registry
from conveyor.logging import get_logger
from conveyor.settings import Settings
from conveyor.worker.dlq import DlqWorker
from conveyor.worker.main import build_broker
from conveyor.worker.runner import Worker

log = get_logger("conveyor.dev")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (`serve_dev` owns the signals), and with an
    event set once it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_dev(
    settings: Settings, *, host: str, port: int, queues: list[str], concurrency: int,
    announce: Callable[[str], None],
) -> int:
    broker = build_broker(settings)
    try:
        await broker.connect()
    except (BrokerUnavailable, BrokerMisconfigured) as exc:
        log.error("broker not usable", extra={"error": exc.message, "code": str(exc.code)})
        return 1
    app = create_app(client=AsyncConveyor(broker), settings=settings)
    server = _Server(uvicorn.Config(
        app, host=host, port=port, access_log=False, **server_options(settings),
    ))
    worker = Worker(
        broker, queues=queues, concurrency=concurrency, registry=default_registry,
        settings=settings, maintenance_hooks=[DlqWorker(default_registry)],
    )

    def on_signal() -> None:
        server.should_exit = True
        worker.stop()  # a second signal skips the grace period

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    worker_task = asyncio.create_task(worker.run(), name="conveyor-dev-worker")
    server_task = asyncio.create_task(server.serve(), name="conveyor-dev-api")
    try:
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({listening, server_task}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if server.started:
            base = f"http://{host}:{port}"
            announce(
                f"Conveyor dev: broker {settings.broker_url}, queues {','.join(queues)}\n"
                f"  API docs   {base}/docs\n"
                + (f"  Dashboard  {base}/ui\n" if _has_route(app, "/ui") else "")
                + "  Ctrl-C to stop"
            )
        await asyncio.wait(
            {worker_task, server_task}, return_when=asyncio.FIRST_COMPLETED
        )
        # whichever ended first (e.g. the port was taken), stop the other, gracefully
        server.should_exit = True
        if not worker.stopping:
            worker.stop()
        await asyncio.gather(worker_task, server_task, return_exceptions=True)
        failed = server_task.done() and not server.started
        return 1 if failed else 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await broker.close()


def _has_route(app: object, prefix: str) -> bool:
    routes = getattr(app, "routes", [])
    return any(str(getattr(r, "path", "")).startswith(prefix) for r in routes)
