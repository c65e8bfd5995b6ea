"""Real `conveyor` processes for the CLI tests: run to completion, or start one on a pty (an
interactive terminal) or on pipes, and stop it by its pid."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = str(Path(sys.executable).parent / "conveyor")
ANSI = "\x1b["


def env(**extra: str) -> dict[str, str]:
    """The test process's environment without any CONVEYOR_* or NO_COLOR, plus `extra`."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("CONVEYOR_") and k != "NO_COLOR"}
    return {**base, **extra}


def run(*args: str, cwd: Path | None = None, timeout: float = 60,
        **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=env(**extra),
                          cwd=cwd, timeout=timeout, check=False, stdin=subprocess.DEVNULL)


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    read_fd: int
    out: bytearray = field(default_factory=bytearray)

    def pump(self, timeout_s: float = 0.05) -> None:
        while select.select([self.read_fd], [], [], timeout_s)[0]:
            try:
                chunk = os.read(self.read_fd, 65536)
            except OSError:  # the pty closed: the process ended
                return
            if not chunk:
                return
            self.out += chunk
            timeout_s = 0

    @property
    def text(self) -> str:
        return self.out.decode(errors="replace")

    def wait_for(self, pred: Callable[[str], bool], timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while not pred(self.text):
            assert self.proc.poll() is None or select.select([self.read_fd], [], [], 0)[0], (
                f"exited {self.proc.returncode}:\n{self.text}")
            assert time.monotonic() < deadline, f"timed out; output so far:\n{self.text}"
            self.pump()

    def finish(self, timeout_s: float = 30) -> int:
        """Wait for the process to end on its own; its exit code."""
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"still running; output so far:\n{self.text}"
            self.pump()
        self.pump(0)
        return self.proc.returncode

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump()
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self.pump(0)
        return code


@contextmanager
def start(*args: str, tty: bool, cwd: Path | None = None, **extra: str) -> Iterator[Running]:
    """`conveyor ARGS` with stdout and stderr on a pty (`tty`) or on one pipe."""
    if tty:
        read_fd, write_fd = os.openpty()
    else:
        read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([SCRIPT, *args], stdin=subprocess.DEVNULL, stdout=write_fd,
                            stderr=write_fd, env=env(**extra), cwd=cwd)
    os.close(write_fd)
    running = Running(proc, read_fd)
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(read_fd)
