"""Handlers for the chaos tests, loaded by real workers with `--app tests.chaos.chaos_app`
(PYTHONPATH is the repository). TEST-ONLY: never import this module in a production worker.

- `chaos.work` records its run in the ledger (start, then done), sleeps `ms` and returns
  `{token, pid, worker}` (plus `pad` characters of padding when asked).
- `chaos.poison` records its start, then kills its own worker (exit 137), on every attempt.

With `CHAOS_CRASH_HOOKS=1` in the worker's environment, a `chaos.work` job whose payload names
a `crash_at` point kills its worker (exit 137) at that point of its first attempt:
`after_fetch` (leased, handler not started), `mid_handler`, `before_ack` (work done, outcome
not sent) or `after_ack` (acknowledged, then the process dies). The fetch and ack points wrap
`RedisBroker.fetch` and `RedisBroker.wait_and_fetch` (both lease) / `RedisBroker.ack` in this
process only, and only when the variable is set, so an ordinary worker runs unpatched code.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field

from conveyor.brokers.base import AckItem, FetchBatch
from conveyor.brokers.redis import RedisBroker
from conveyor.handlers import JobContext, handler
from conveyor.retry import ExponentialBackoff
from tests.chaos.ledger import CRASH_ENV, LEDGER_ENV, Event, Ledger

CRASH_EXIT = 137
WORK_TYPE = "chaos.work"
POISON_TYPE = "chaos.poison"

CrashPoint = Literal["after_fetch", "mid_handler", "before_ack", "after_ack"]
CRASH_POINTS: tuple[CrashPoint, ...] = ("after_fetch", "mid_handler", "before_ack", "after_ack")

_ledger: Ledger | None = None
#: job id -> crash point, for the ack hooks (filled by the handler of that job)
_ack_traps: dict[str, CrashPoint] = {}


class WorkPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ms: int = Field(default=0, ge=0)
    crash_at: CrashPoint | None = None
    #: characters of padding in the result (the oversized-results scenario)
    pad: int = Field(default=0, ge=0)


def ledger() -> Ledger:
    global _ledger
    if _ledger is None:
        path = os.environ.get(LEDGER_ENV)
        if not path:
            raise RuntimeError(f"{LEDGER_ENV} is not set: the chaos handlers need a ledger")
        _ledger = Ledger(path)
    return _ledger


def lease_token(ctx: JobContext) -> str:
    """The delivery's lease token, as the worker hands it to the handler."""
    return ctx.lease_token


def crash(point: str, job_id: str) -> NoReturn:
    line = {"level": "WARNING", "logger": "chaos", "event": "chaos_crash", "point": point,
            "job_id": job_id, "pid": os.getpid(), "at": time.time()}
    sys.stderr.write(json.dumps(line) + "\n")
    sys.stderr.flush()
    os._exit(CRASH_EXIT)


def _hooks_on() -> bool:
    return os.environ.get(CRASH_ENV) == "1"


def _record(ctx: JobContext, token: str, event: Event) -> None:
    ledger().record(ctx.job_id, ctx.attempt, token, os.getpid(), ctx.worker_id, event)


@handler(WORK_TYPE, payload=WorkPayload, max_attempts=5,
         backoff=ExponentialBackoff(base_s=0.05, cap_s=0.5))
async def work(payload: WorkPayload, ctx: JobContext) -> dict[str, Any]:
    token = lease_token(ctx)
    _record(ctx, token, Event.START)
    point = payload.crash_at if _hooks_on() and ctx.attempt == 1 else None
    if point == "mid_handler":
        await asyncio.sleep(payload.ms / 2000)
        crash(point, ctx.job_id)
    if payload.ms:
        await asyncio.sleep(payload.ms / 1000)
    _record(ctx, token, Event.DONE)
    if point in ("before_ack", "after_ack"):
        _ack_traps[ctx.job_id] = point
    result: dict[str, Any] = {"pid": os.getpid(), "token": token, "worker": ctx.worker_id}
    if payload.pad:
        result["pad"] = "p" * payload.pad
    return result


@handler(POISON_TYPE, max_attempts=3)
async def poison(payload: Any, ctx: JobContext) -> None:
    _record(ctx, lease_token(ctx), Event.START)
    crash("poison", ctx.job_id)


def _crash_point(payload_json: str) -> str | None:
    try:
        data = json.loads(payload_json)
    except ValueError:
        return None
    return data.get("crash_at") if isinstance(data, dict) else None


def _crash_after_fetch(batch: FetchBatch) -> FetchBatch:
    for d in batch.deliveries:
        if d.attempts == 1 and _crash_point(d.payload_json) == "after_fetch":
            crash("after_fetch", d.job_id)
    return batch


def _install_hooks() -> None:
    """`after_fetch` on both paths that lease: `fetch`, and the one-hop `wait_and_fetch`
    of a worker on one queue (issue 19)."""
    fetch, wait_and_fetch, ack = RedisBroker.fetch, RedisBroker.wait_and_fetch, RedisBroker.ack

    async def fetch_then_crash(
        self: RedisBroker, queue: str, count: int, worker_id: str, lease_ms: int
    ) -> FetchBatch:
        return _crash_after_fetch(await fetch(self, queue, count, worker_id, lease_ms))

    async def wait_and_fetch_then_crash(
        self: RedisBroker, queue: str, count: int, worker_id: str, lease_ms: int,
        timeout_s: float, ticket: str,
    ) -> FetchBatch:
        return _crash_after_fetch(
            await wait_and_fetch(self, queue, count, worker_id, lease_ms, timeout_s, ticket))

    async def ack_around_crash(self: RedisBroker, items: Sequence[AckItem]) -> list[bool]:
        points = {_ack_traps[i.job_id]: i.job_id for i in items if i.job_id in _ack_traps}
        if "before_ack" in points:
            crash("before_ack", points["before_ack"])
        result = await ack(self, items)
        if "after_ack" in points:
            crash("after_ack", points["after_ack"])
        return result

    RedisBroker.fetch = fetch_then_crash  # type: ignore[method-assign]
    RedisBroker.wait_and_fetch = wait_and_fetch_then_crash  # type: ignore[method-assign]
    RedisBroker.ack = ack_around_crash  # type: ignore[method-assign]


if _hooks_on():
    _install_hooks()
