"""Child `python -m conveyor ...` processes (workers, the API) with their log files: started
with the test's settings only (no CONVEYOR_* of the outer shell), stopped at teardown (SIGTERM,
SIGKILL past a bounded wait), their JSON log records read back. And free local ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

POLL_S = 0.02
#: How long teardown waits after SIGTERM before it sends SIGKILL.
STOP_TIMEOUT_S = 5.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def conveyor_env(
    settings: Mapping[str, str], *, pythonpath: Sequence[str | Path] = (),
    drop: Collection[str] = (),
) -> dict[str, str]:
    """This process's environment without any CONVEYOR_* (or `drop`) variable, plus
    `settings` and `pythonpath` (in front of any PYTHONPATH already set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_") and k not in drop}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (*map(str, pythonpath), env.get("PYTHONPATH", "")) if p
        )
    return env


@dataclass(eq=False)
class ChildProcess:
    """One `python -m conveyor <args>` child and its log files (one file when stderr goes to
    stdout)."""

    name: str
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    files: list[IO[bytes]] = field(default_factory=list)

    @classmethod
    def launch(
        cls, name: str, args: Sequence[str], *, env: Mapping[str, str], log_dir: Path,
        cwd: Path | None = None, merge_output: bool = False, **fields: Any,
    ) -> Self:
        """Start it with `env` only, its output in `log_dir` (also its cwd unless `cwd`);
        `fields`: a subclass's own fields."""
        stdout_path = log_dir / (f"{name}.log" if merge_output else f"{name}.stdout")
        stderr_path = stdout_path if merge_output else log_dir / f"{name}.stderr"
        out = stdout_path.open("wb")
        err = out if merge_output else stderr_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", *args], stdout=out,
            stderr=subprocess.STDOUT if merge_output else err, stdin=subprocess.DEVNULL,
            env=dict(env), cwd=cwd or log_dir,
        )
        return cls(name, proc, stdout_path, stderr_path,
                   files=[out] if merge_output else [out, err], **fields)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.running():
            self.proc.send_signal(sig)

    def terminate(self) -> None:
        self.send(signal.SIGTERM)

    def kill(self) -> None:
        self.send(signal.SIGKILL)

    async def wait_exit(self, timeout_s: float) -> int:
        """The exit code (negative: killed by that signal); fails with the logs if late."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (code := self.proc.poll()) is None:
            if loop.time() > deadline:
                raise AssertionError(
                    f"{self.name} (pid {self.pid}) still running after {timeout_s}s\n"
                    + self.logs()
                )
            await asyncio.sleep(POLL_S)
        return code

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Teardown: SIGTERM, SIGKILL past a bounded wait, log files closed. Never raises."""
        try:
            if self.running():
                self.terminate()
                try:
                    await self.wait_exit(timeout_s)
                except AssertionError:
                    print(f"{self.name} ignored SIGTERM for {timeout_s}s: SIGKILL")
                    self.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout_s)
        finally:
            self.close_files()

    def stop_sync(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """`stop` for sync tests."""
        try:
            if self.running():
                self.terminate()
                try:
                    self.proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(timeout=timeout_s)
        finally:
            self.close_files()

    def _read(self, path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int | None = None) -> str:
        paths = {"stdout": self.stdout_path, "stderr": self.stderr_path}
        if self.stderr_path == self.stdout_path:
            paths = {"output": self.stdout_path}
        parts = []
        for label, path in paths.items():
            text = self._read(path)
            text = text[-tail:] if tail is not None else text
            parts.append(f"----- {self.name} (pid {self.pid}) {label} -----\n{text}")
        return "\n".join(parts)

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log records on stderr (anything else, e.g. a raw traceback, is skipped)."""
        events = []
        for line in self._read(self.stderr_path).splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
        return events

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.log_events() if e.get("event") == name]

    def error_lines(self) -> list[str]:
        """Error-level records, and any stderr line that is not a JSON record (a traceback)."""
        bad = []
        for line in self._read(self.stderr_path).splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                bad.append(line)
                continue
            if not isinstance(record, dict) or record.get("level") in ("ERROR", "CRITICAL"):
                bad.append(line)
        return bad

    def close_files(self) -> None:
        for f in self.files:
            f.close()
        self.files.clear()


def worker_args(queues: str, concurrency: int, app: str | None = None,
                extra: Sequence[str] = ()) -> list[str]:
    """`conveyor worker`'s arguments."""
    args = ["worker", "--queues", queues, "--concurrency", str(concurrency)]
    if app is not None:
        args += ["--app", app]
    return [*args, *extra]
