"""The per-type DLQ policy, declared on the handler: redrive dead jobs after a delay, at most
N times, and `on_dead` hooks. The DLQ worker (`conveyor.worker.dlq`) carries it out.

Poison jobs (dead with `lease_expired`: they killed or hung their worker `max_attempts`
times) are never redriven by a policy unless it opts in with `redrive_poison=True`: only an
operator should send such a job back to the workers.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from conveyor.brokers.base import DeadSelector
from conveyor.errors import ErrorCode
from conveyor.jobs import Job

#: An `on_dead` hook: a sync or async callable taking the dead job. Its return is ignored.
DeadHook = Callable[[Job], Awaitable[None] | None]

DEFAULT_MAX_REDRIVES = 3
MAX_REDRIVES_LIMIT = 100
MAX_REDRIVE_AFTER_S = 365 * 24 * 3600.0
POISON_CODES: tuple[str, ...] = (ErrorCode.LEASE_EXPIRED.value,)


@dataclass(frozen=True, slots=True)
class DlqPolicy:
    #: redrive a dead job this long after its death (None: never redrive automatically)
    redrive_after_s: float | None = None
    #: at most this many redrives per job (every DEAD -> QUEUED move counts, manual ones too)
    max_redrives: int = DEFAULT_MAX_REDRIVES
    on_dead: tuple[DeadHook, ...] = ()
    #: also redrive poison jobs (`lease_expired`); off by default
    redrive_poison: bool = False

    def __post_init__(self) -> None:
        after = self.redrive_after_s
        if after is not None and (
            isinstance(after, bool) or not isinstance(after, int | float)
            or not math.isfinite(after) or not 0 <= after <= MAX_REDRIVE_AFTER_S
        ):
            raise ValueError(f"redrive_after must be 0 to 365 days, got {after!r}")
        n = self.max_redrives
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REDRIVES_LIMIT:
            raise ValueError(f"max_redrives must be an integer from 1 to {MAX_REDRIVES_LIMIT}")
        for hook in self.on_dead:
            if not callable(hook):
                raise ValueError(f"on_dead hooks must be callables, got {hook!r}")

    @property
    def redrives(self) -> bool:
        return self.redrive_after_s is not None

    def selector(self, type_name: str, now_ms: int) -> DeadSelector:
        """The dead jobs of `type_name` this policy redrives now: dead at least
        `redrive_after` ago, redriven fewer than `max_redrives` times, not poison (unless
        opted in)."""
        after_ms = int((self.redrive_after_s or 0.0) * 1000)
        return DeadSelector(
            type=type_name,
            died_before_ms=now_ms - after_ms + 1,
            skip_error_codes=() if self.redrive_poison else POISON_CODES,
            max_redrives=self.max_redrives,
        )


def build_policy(
    *,
    redrive_after: timedelta | float | None = None,
    max_redrives: int | None = None,
    on_dead: DeadHook | Sequence[DeadHook] | None = None,
    redrive_poison: bool = False,
) -> DlqPolicy | None:
    """The policy the `@handler` keywords describe, or None when they describe none."""
    if redrive_after is None and (max_redrives is not None or redrive_poison):
        raise ValueError("max_redrives and redrive_poison need redrive_after")
    hooks: tuple[DeadHook, ...]
    if on_dead is None:
        hooks = ()
    elif callable(on_dead):
        hooks = (on_dead,)
    else:
        hooks = tuple(on_dead)
    if redrive_after is None and not hooks:
        return None
    after = redrive_after.total_seconds() if isinstance(redrive_after, timedelta) else (
        redrive_after
    )
    return DlqPolicy(
        redrive_after_s=after,
        max_redrives=DEFAULT_MAX_REDRIVES if max_redrives is None else max_redrives,
        on_dead=hooks,
        redrive_poison=redrive_poison,
    )
