"""Batch job outcomes: few `ack()` and `fail()` round trips for any number of jobs.

There is no timer: the flusher sends whatever is pending as soon as it exists, so under load
the batches grow on their own while the previous round trip is in flight. Every batch is
bounded by count and by bytes. A late or repeated ack is harmless: the lease token fences it.

One outcome must never block the others. While the broker is unreachable everything is kept
and retried with backoff. But a broker that answers a ping and still refuses a batch is
refusing *that request* (Redis resets the connection on a request over its limits, which
otherwise looks like "Redis down"): the batch is split in halves until the bad item stands
alone, and only that one is given up. A refused ack becomes a `result_too_large` failure of
its job; a refused failure is resent stripped to ASCII; past that it is dropped and logged
(its lease expires and the job runs again: at-least-once). A large batch refused also lowers
the byte bound of later batches (to half its size, never under `SUSPECT_BYTES`), so a worker
learns its server's limit instead of paying for a split on every flush.

An outcome waiting here still holds its lease: `pending_leases` lets the lease keeper extend
it, so a slow broker delays outcomes without expiring their jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, TypeVar

from conveyor.brokers.base import AckItem, Broker, FailItem, LeaseRef
from conveyor.errors import ErrorCode
from conveyor.jobs import JobState
from conveyor.logging import get_logger
from conveyor.worker.backoff import TRANSIENT_ERRORS, BrokerBackoff, broker_wide
from conveyor.worker.safety import MESSAGE_LIMIT, byte_size

log = get_logger("conveyor.worker.completions")

#: Bounds of one batch (per kind: acks and fails travel separately).
MAX_BATCH_ITEMS = 1000
MAX_BATCH_BYTES = 8 * 1024 * 1024
#: Below this a request cannot break a server's request limits (Redis' smallest settings of
#: client-query-buffer-limit and proto-max-bulk-len are 1 MB): a dropped connection on a
#: smaller one is the broker's trouble, never the request's.
SUSPECT_BYTES = 512 * 1024
#: How many times a lone item must be refused (broker answering meanwhile) to be given up.
STRIKES = 2
#: Per-item overhead of the batch encoding (ids, token, JSON punctuation), roughly.
ITEM_OVERHEAD = 96

T = TypeVar("T", AckItem, FailItem)
#: the reply `on_answer` gets for an outcome given up (never sent)
DROPPED = "dropped"
_CODE_RE = re.compile(r"^[a-z0-9_.:-]{1,64}$")


def ack_size(item: AckItem) -> int:
    return byte_size(item.result_json) + len(item.job_id) + ITEM_OVERHEAD


def fail_size(item: FailItem) -> int:
    return (byte_size(item.message) + byte_size(item.traceback) + byte_size(item.error_code)
            + len(item.job_id) + ITEM_OVERHEAD)


def stripped(item: FailItem) -> FailItem:
    """A failure any broker can store: ASCII message, safe code, no traceback. Idempotent,
    so a stripped item refused again is recognised and dropped."""
    message = item.message.encode("ascii", "backslashreplace").decode("ascii")[:MESSAGE_LIMIT]
    code = item.error_code if _CODE_RE.fullmatch(item.error_code) else ErrorCode.HANDLER_ERROR
    return FailItem(item.job_id, item.token, str(code), message, "", item.retry_delay_ms)


def _take(queue: list[T], size: Callable[[T], int], max_items: int, max_bytes: int) -> list[T]:
    """Pop a batch off the front of `queue`: at least one item, then within both bounds."""
    n = total = 0
    for item in queue:
        s = size(item)
        if n and (n >= max_items or total + s > max_bytes):
            break
        n += 1
        total += s
    batch = queue[:n]
    del queue[:n]
    return batch


@dataclass(slots=True)
class _Kind(Generic[T]):
    """What differs between acks and fails: the call, the size, what a refusal turns into."""

    name: str
    call: Callable[[Sequence[T]], Awaitable[Sequence[object]]]
    size: Callable[[T], int]


class Completions:
    def __init__(
        self,
        broker: Broker,
        *,
        backoff: BrokerBackoff | None = None,
        max_batch_items: int = MAX_BATCH_ITEMS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        on_answer: Callable[[AckItem | FailItem, object], None] | None = None,
    ) -> None:
        self._broker = broker
        #: told each outcome the broker answered (its reply: bool for acks, JobState | None
        #: for fails), and each one given up (reply None): the worker's metrics
        self._on_answer = on_answer
        self._acks: list[AckItem] = []
        self._fails: list[FailItem] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._backoff = backoff or BrokerBackoff()
        self._max_items = max(1, max_batch_items)
        self._max_bytes = max(1, max_batch_bytes)
        self._task: asyncio.Task[None] | None = None
        #: the batches of the flush in progress (taken off the queues, not yet answered)
        self._sending: list[AckItem | FailItem] = []
        self._ack_kind: _Kind[AckItem] = _Kind("ack", broker.ack, ack_size)
        self._fail_kind: _Kind[FailItem] = _Kind("fail", broker.fail, fail_size)
        #: times the ack and fail round trips when set (the worker's metrics)
        self.call_timer: Callable[[str], AbstractContextManager[object]] | None = None
        self.acked = 0
        self.failed = 0
        self.rejected = 0
        #: outcomes the broker refused outright (after splitting), dropped or replaced
        self.refused = 0

    @property
    def pending(self) -> int:
        return len(self._acks) + len(self._fails)

    @property
    def max_batch_bytes(self) -> int:
        return self._max_bytes

    def pending_leases(self) -> list[LeaseRef]:
        """The leases of every outcome not yet answered by the broker."""
        items: list[AckItem | FailItem] = [*self._sending, *self._acks, *self._fails]
        return [LeaseRef(i.job_id, i.token) for i in items]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="conveyor-completions"
            )

    def submit(self, outcome: AckItem | FailItem) -> None:
        if isinstance(outcome, AckItem):
            self._acks.append(outcome)
        else:
            self._fails.append(outcome)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything submitted so far has been sent (or given up at close)."""
        if self._task is None:
            self.start()
        await self._idle.wait()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Drain, then stop. Past `timeout_s` (broker down) unsent outcomes are dropped and
        logged: their leases expire and the jobs are delivered again (at-least-once)."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            if self.pending:
                log.error(
                    "outcomes_dropped_at_shutdown",
                    extra={"count": self.pending, "job_ids": self._pending_ids()[:50]},
                )
        self._task = None

    def _pending_ids(self) -> list[str]:
        return [a.job_id for a in self._acks] + [f.job_id for f in self._fails]

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._acks or self._fails:
                await self._flush_once()
            self._idle.set()
            if self._closing:
                return

    async def _flush_once(self) -> None:
        acks = _take(self._acks, ack_size, self._max_items, self._max_bytes)
        fails = _take(self._fails, fail_size, self._max_items, self._max_bytes)
        self._sending = [*acks, *fails]
        try:
            ack_left, fail_left = await asyncio.gather(
                self._send(self._ack_kind, acks), self._send(self._fail_kind, fails)
            )
        finally:
            self._sending = []
        if not (ack_left or fail_left):
            self._backoff.reset()
            return
        # The broker is unreachable: put what was not sent back in front, in order.
        self._acks[:0] = ack_left
        self._fails[:0] = fail_left
        delay = self._backoff.next_delay_s()
        log.warning(
            "completions_backing_off",
            extra={"pending": self.pending, "retry_in_s": round(delay, 3)},
        )
        await asyncio.sleep(delay)

    async def _send(self, kind: _Kind[T], items: list[T]) -> list[T]:
        """Send `items`, splitting refused batches; returns what is left unsent because the
        broker is unreachable (nothing is lost), in order."""
        todo: list[tuple[list[T], int]] = [(items, 0)] if items else []
        while todo:
            batch, strikes = todo.pop()
            try:
                if self.call_timer is None:
                    results = await kind.call(batch)
                else:
                    with self.call_timer(kind.name):
                        results = await kind.call(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not await self._refused(batch, kind, exc):
                    left = list(batch)
                    for rest, _ in reversed(todo):
                        left += rest
                    return left
                if len(batch) > 1:
                    mid = len(batch) // 2
                    todo += [(batch[mid:], 0), (batch[:mid], 0)]
                elif strikes + 1 < STRIKES and isinstance(exc, TRANSIENT_ERRORS):
                    todo.append((batch, strikes + 1))
                else:
                    self._give_up(batch[0], exc)
                continue
            self._account(batch, results)
        return []

    async def _refused(self, batch: Sequence[T], kind: _Kind[T], exc: Exception) -> bool:
        """True when the broker refuses this request (so splitting it can help); False when
        the broker itself is in trouble (unreachable, full, read-only): wait and resend."""
        if broker_wide(exc):
            return False
        size = sum(kind.size(item) for item in batch)
        if isinstance(exc, TRANSIENT_ERRORS) and (
            size < SUSPECT_BYTES or not await self._broker_answers()
        ):
            return False
        log.warning(
            "outcome_batch_refused",
            extra={"kind": kind.name, "count": len(batch), "bytes": size,
                   "error": repr(exc)[:500]},
        )
        if len(batch) > 1 and size >= SUSPECT_BYTES and size // 2 < self._max_bytes:
            self._max_bytes = max(SUSPECT_BYTES, size // 2)
            log.warning("outcome_batches_bounded_lower", extra={"max_bytes": self._max_bytes})
        return True

    async def _broker_answers(self) -> bool:
        try:
            return await self._broker.ping()
        except Exception:
            return False

    def _give_up(self, item: AckItem | FailItem, exc: Exception) -> None:
        self.refused += 1
        reason = repr(exc)[:300]
        if isinstance(item, AckItem):
            size = byte_size(item.result_json)
            log.error(
                "result_refused",
                extra={"job_id": item.job_id, "result_bytes": size, "error": reason,
                       "detail": "failing its job with result_too_large"},
            )
            self._fails.append(FailItem(
                item.job_id, item.token, str(ErrorCode.RESULT_TOO_LARGE),
                f"the broker refused the result ({size} bytes): {reason}",
            ))
            return
        plain = stripped(item)
        if plain != item:
            log.error(
                "failure_refused_resent_stripped",
                extra={"job_id": item.job_id, "error_code": item.error_code, "error": reason},
            )
            self._fails.append(plain)
            return
        log.error(
            "failure_dropped",
            extra={"job_id": item.job_id, "error_code": item.error_code, "error": reason,
                   "detail": "the lease will expire and the job run again"},
        )
        if self._on_answer is not None:
            self._on_answer(item, DROPPED)

    def _account(self, batch: Sequence[AckItem | FailItem], results: Sequence[object]) -> None:
        if self._on_answer is not None:
            for item, res in zip(batch, results, strict=False):
                self._on_answer(item, res)
        for item, res in zip(batch, results, strict=False):
            if isinstance(item, AckItem):
                if res:
                    self.acked += 1
                else:
                    self.rejected += 1
                    log.warning("ack_rejected_lease_lost", extra={"job_id": item.job_id})
            elif isinstance(res, JobState):
                self.failed += 1
            else:
                self.rejected += 1
                log.warning(
                    "fail_rejected_lease_lost",
                    extra={"job_id": item.job_id, "error_code": item.error_code},
                )
