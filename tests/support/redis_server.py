"""A redis-server owned by one test: its own port and data directory, killed and restarted at
will, and always stopped at teardown (the shared Redis on 6379 is never touched)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError, RedisError

from tests.support.processes import free_port

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
POLL_S = 0.02

#: AOF on, every write fsynced before the reply: nothing acknowledged is lost.
AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
#: AOF on, fsync once a second: a crash of the machine (not the process) loses up to 1 s.
AOF_EVERYSEC = ("--appendonly", "yes", "--appendfsync", "everysec")
#: No persistence at all: a restart starts empty.
NO_PERSISTENCE = ("--appendonly", "no")


#: The `redis_servers` fixture: `await redis_servers("name", AOF_ALWAYS)` starts one.
StartRedis = Callable[[str, tuple[str, ...]], Awaitable["RedisServer"]]


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


@dataclass(eq=False)
class RedisServer:
    """`start()` and `restart()` keep the same port and directory, so data on disk (AOF)
    is what survives a `kill()`."""

    directory: Path
    args: tuple[str, ...]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis-server.log"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self) -> None:
        binary = redis_server_binary()
        assert binary, "redis-server is not installed"
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.proc = self._spawn(binary)
        self.starts += 1
        await self.wait_ready()

    def _spawn(self, binary: str) -> subprocess.Popen[bytes]:
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
               str(self.directory), "--save", "", "--daemonize", "no",
               "--protected-mode", "no", *self.args]
        return subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until PING answers and any AOF is loaded; fails with the server's log."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        client = Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0,
                       socket_connect_timeout=1.0)
        try:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"redis-server exited with {self.proc.returncode}\n{self.log()}"
                    )
                with contextlib.suppress(RedisError, OSError, BusyLoadingError):
                    if await client.ping():
                        info = await client.info("persistence")
                        if not int(info.get("loading", 0)):
                            return
                if loop.time() > deadline:
                    raise AssertionError(
                        f"redis-server not ready after {timeout_s}s\n{self.log()}"
                    )
                await asyncio.sleep(POLL_S)
        finally:
            await client.aclose()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT_S)

    async def restart(self) -> None:
        self.kill()
        await self.start()

    def stop(self) -> None:
        """Teardown: SIGTERM, SIGKILL past a bounded wait. Never raises."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"----- redis-server :{self.port} log -----\n{text[-4000:]}"
