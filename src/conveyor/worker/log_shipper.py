"""Send the log lines handlers write (`ctx.logger`) to the broker, batched.

Each running delivery has a `LogBuffer`; every `FLUSH_S` the shipper sends every non-empty
buffer in one `append_logs` call (one round trip per pipeline, whatever the number of jobs
and lines), and a job's remaining lines go in one call when its handler returns, before its
outcome is handed to the completions batcher (after the ack, the fence refuses them). So a
handler that logs a thousand lines a second costs about one broker call a second, not a
thousand.

Best effort, never in a job's way: lines of a lease that was lost are refused by the fence,
and a flush that fails (broker down) drops its lines with a warning rather than holding
them, or the job, back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from conveyor.brokers.base import Broker, LogAppend
from conveyor.joblogs import LogBuffer, encode_line
from conveyor.jobs import Delivery
from conveyor.logging import get_logger
from conveyor.worker.backoff import TRANSIENT_ERRORS
from conveyor.worker.ticker import run_every

log = get_logger("conveyor.worker.log_shipper")

#: how often buffered lines are sent
FLUSH_S = 1.0


class LogShipper:
    def __init__(self, broker: Broker, *, interval_s: float = FLUSH_S) -> None:
        self._broker = broker
        self._interval_s = interval_s
        #: running deliveries; a buffer is made on a delivery's first kept line
        self._live: set[tuple[str, str]] = set()
        self._buffers: dict[tuple[str, str], LogBuffer] = {}
        #: broker calls made and lines sent (tests and metrics read them)
        self.calls = 0
        self.lines_sent = 0

    def start(self, d: Delivery) -> None:
        """The delivery's handler is about to run: lines may be kept for it."""
        self._live.add((d.job_id, d.token))

    def open(self, d: Delivery) -> LogBuffer | None:
        """The buffer of this delivery, made on first use; None once it ended (a handler's
        stray thread logging late: nothing would ever send or forget that buffer). Safe
        from any thread: `setdefault` makes one buffer whoever asks first."""
        key = (d.job_id, d.token)
        buf = self._buffers.get(key)
        if buf is None and key in self._live:
            buf = self._buffers.setdefault(key, LogBuffer(d.job_id, d.token, d.attempts))
        return buf

    def opener(self, d: Delivery) -> Callable[[], LogBuffer | None]:
        return lambda: self.open(d)

    async def run(self) -> None:
        await run_every(self._interval_s, self.flush, first_now=False)

    async def flush(self) -> None:
        """Send every buffered line, of every running job, in one call."""
        await self._send(list(self._buffers.values()))

    async def close(self, d: Delivery) -> None:
        """The delivery's handler returned: send its last lines and forget it."""
        key = (d.job_id, d.token)
        self._live.discard(key)
        buf = self._buffers.pop(key, None)
        if buf is not None:  # most jobs log nothing and have none
            await self._send([buf])

    def discard(self, d: Delivery) -> None:
        """Forget the delivery's buffer, unsent (its lease is gone)."""
        key = (d.job_id, d.token)
        self._live.discard(key)
        self._buffers.pop(key, None)

    async def _send(self, buffers: list[LogBuffer]) -> None:
        items = []
        for buf in buffers:
            lines = buf.take()
            if buf.dropped:
                lines.insert(0, _dropped_line(buf))
                buf.dropped = 0
            if lines:
                items.append(LogAppend(buf.job_id, buf.token, lines))
        if not items:
            return
        try:
            await self._broker.append_logs(items)
        except TRANSIENT_ERRORS as exc:
            log.warning("job_logs_dropped_broker_unavailable",
                        extra={"error": repr(exc), "jobs": len(items)})
            return
        except Exception:
            log.exception("job_logs_dropped", extra={"jobs": len(items)})
            return
        self.calls += 1
        self.lines_sent += sum(len(i.lines) for i in items)


def _dropped_line(buf: LogBuffer) -> str:
    return encode_line(time.time_ns() // 1_000_000, "WARNING", buf.attempt,
                       f"({buf.dropped} earlier lines dropped: more than the buffer holds "
                       "between two flushes)")
