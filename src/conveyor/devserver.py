"""`conveyor dev`: the API, a worker and its maintenance in one process on one broker (the
embedded SQLite file unless CONVEYOR_BROKER_URL says otherwise), for a laptop.

One broker object serves both sides, so on SQLite an enqueue through the API wakes the
worker in-process at once. Ctrl-C (or SIGTERM) stops the server and drains the worker like
`conveyor worker` does; a second Ctrl-C releases running jobs at once.

The port is bound before anything starts, so a busy port is one clear line and exit code 1
(not uvicorn's `sys.exit` inside a task: a traceback and exit code 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Generator

import uvicorn

from conveyor.api.server import server_options
from conveyor.brokers import broker_from_settings
from conveyor.cli.broker import redact_url
from conveyor.client import AsyncConveyor
from conveyor.errors import BrokerMisconfigured, BrokerUnavailable
from conveyor.handlers import default_registry
from conveyor.logging import get_logger
from conveyor.settings import Settings
from conveyor.web import create_app
from conveyor.webhooks.follower import WebhookFanout
from conveyor.worker.dlq import DlqWorker
from conveyor.worker.runner import Worker
from conveyor.worker.schedules import ScheduleFirer, sync_declared

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


def _listen(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound the way uvicorn binds one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _serve_api(server: _Server, sock: socket.socket) -> None:
    with contextlib.suppress(SystemExit):  # uvicorn exits on a start-up failure it logged
        await server.serve(sockets=[sock])


async def serve_dev(
    settings: Settings, *, host: str, port: int, queues: list[str], concurrency: int,
    announce: Callable[[str], None],
) -> int:
    try:
        sock = _listen(host, port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        log.error(
            "devserver_listen_failed",
            extra={"host": host, "port": port, "errno": exc.errno, "reason": reason.lower(),
                   "detail": "is another server running there? pass --port or --host"},
        )
        return 1
    try:
        return await _serve(settings, sock, host=host, port=port, queues=queues,
                            concurrency=concurrency, announce=announce)
    finally:
        sock.close()


async def _serve(
    settings: Settings, sock: socket.socket, *, host: str, port: int, queues: list[str],
    concurrency: int, announce: Callable[[str], None],
) -> int:
    broker = broker_from_settings(settings)
    try:
        await broker.connect()
    except (BrokerUnavailable, BrokerMisconfigured) as exc:
        log.error("broker_not_usable", extra={"error": exc.message, "code": str(exc.code)})
        return 1
    app = create_app(client=AsyncConveyor(broker), settings=settings)
    server = _Server(uvicorn.Config(
        app, host=host, port=port, access_log=False, **server_options(settings),
    ))
    worker = Worker(
        broker, queues=queues, concurrency=concurrency, registry=default_registry,
        settings=settings,
        maintenance_hooks=[DlqWorker(default_registry), ScheduleFirer(default_registry),
                           WebhookFanout(settings=settings)],
    )
    await sync_declared(broker, default_registry)

    def on_signal() -> None:
        server.should_exit = True
        worker.stop()  # a second signal skips the grace period

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    worker_task = asyncio.create_task(worker.run(), name="conveyor-dev-worker")
    server_task = asyncio.create_task(_serve_api(server, sock), name="conveyor-dev-api")
    try:
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({listening, server_task}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if server.started:
            base = f"http://{host}:{port}"
            announce(
                f"Conveyor dev: broker {redact_url(settings.broker_url)},"
                f" queues {','.join(queues)}\n"
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
