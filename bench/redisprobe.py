"""What the comparison reads from Redis itself: the bench db's flush, command counts (INFO
commandstats, and MONITOR filtered to the bench db), memory per job and the server's facts.

The Redis server is shared (other test suites may use db 0 meanwhile): commandstats and
used_memory are server-wide, so MONITOR, which names each command's db, gives the figures
that count only this benchmark; when both agree, nothing else was running.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass, field

from redis import Redis

#: commands the runner itself sends; never counted as a system's cost
OWN_COMMANDS = frozenset({"info", "memory", "scan", "flushdb", "dbsize", "monitor"})
_LINE = re.compile(rb'^\+(\d+\.\d+) \[(\d+) ([^\]]*)\] "([^"]*)"')


class Probe:
    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url, decode_responses=True)
        kw = self.redis.connection_pool.connection_kwargs
        self.host, self.port, self.db = kw.get("host", "127.0.0.1"), kw.get("port", 6379), kw["db"]
        if self.db == 0:
            raise SystemExit("refusing to benchmark on db 0: other test suites use it")

    def flush(self) -> None:
        self.redis.flushdb()

    def calls(self) -> dict[str, int]:
        stats = self.redis.info("commandstats")
        out = {}
        for key, val in stats.items():
            name = key.removeprefix("cmdstat_").lower()
            if name.split("|")[0] not in OWN_COMMANDS:
                out[name] = int(val["calls"])
        return out

    def used_memory(self) -> int:
        return int(self.redis.info("memory")["used_memory"])

    def key_memory(self) -> tuple[int, int]:
        """(number of keys, sum of MEMORY USAGE over them) in the bench db."""
        keys = list(self.redis.scan_iter(count=1000))
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.memory_usage(k, samples=0)
        sizes = pipe.execute() if keys else []
        return len(keys), sum(int(s or 0) for s in sizes)

    def server(self) -> dict[str, str]:
        info = self.redis.info("server")
        mem = self.redis.info("memory")
        persistence = self.redis.info("persistence")
        return {
            "redis_version": str(info.get("redis_version")),
            "maxmemory_policy": str(mem.get("maxmemory_policy")),
            "aof_enabled": str(persistence.get("aof_enabled")),
            "io_threads": str(self.redis.config_get("io-threads").get("io-threads", "?")),
        }

    def close(self) -> None:
        self.redis.close()


def delta(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(after.get(k, 0) - before.get(k, 0) for k in after)


@dataclass
class Counted:
    client: int = 0  # commands sent by clients (an EVALSHA counts once)
    lua: int = 0  # commands run inside scripts
    by_command: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.client + self.lua


class Monitor(threading.Thread):
    """MONITOR on its own socket, keeping (time, from Lua, command) of the bench db only."""

    def __init__(self, host: str, port: int, db: int) -> None:
        super().__init__(daemon=True)
        self.db = str(db).encode()
        self.sock = socket.create_connection((host, port))
        self.sock.sendall(b"MONITOR\r\n")
        self.events: list[tuple[float, bool, str]] = []
        self.ready = threading.Event()

    def run(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\r\n")
            for line in lines:
                if line == b"+OK":
                    self.ready.set()
                    continue
                m = _LINE.match(line)
                if m and m.group(2) == self.db:
                    cmd = m.group(4).decode(errors="replace").lower()
                    if cmd not in OWN_COMMANDS:
                        self.events.append((float(m.group(1)), m.group(3) == b"lua", cmd))

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.join(5)

    def count(self, start: float, end: float) -> Counted:
        c = Counted()
        for t, lua, cmd in list(self.events):
            if start <= t <= end:
                if lua:
                    c.lua += 1
                else:
                    c.client += 1
                c.by_command[cmd] = c.by_command.get(cmd, 0) + 1
        return c
