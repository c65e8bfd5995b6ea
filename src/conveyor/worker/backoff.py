"""Capped exponential backoff and the set of errors that mean "the broker is unreachable".

Every worker loop (fetch, completions, heartbeats, maintenance) survives these errors the same
way: log, wait a growing jittered delay, try again. redis-py reconnects on the next command.
"""

from __future__ import annotations

import random

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor.errors import BrokerUnavailable, ConveyorError, ErrorCode

#: Errors after which retrying later can succeed. OSError covers refused/reset sockets.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    BrokerUnavailable,
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)

#: Codes and Redis error prefixes that say the broker as a whole refuses work right now
#: (full, read-only replica, busy script, failed disk save...), whatever the request.
_BROKER_WIDE_CODES = frozenset({ErrorCode.BROKER_MISCONFIGURED, "broker_full"})
_BROKER_WIDE_REPLIES = (
    "OOM", "BUSY", "READONLY", "MISCONF", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
    "NOREPLICAS",
)


def broker_wide(exc: BaseException) -> bool:
    """True when `exc` says the broker refuses any request now, not this one in particular:
    wait and resend, never give the request up."""
    for err in (exc, exc.__cause__):
        if isinstance(err, ConveyorError) and str(err.code) in _BROKER_WIDE_CODES:
            return True
        if isinstance(err, ResponseError) and str(err).startswith(_BROKER_WIDE_REPLIES):
            return True
    return False


class BrokerBackoff:
    """The wait between calls to a broker that is unreachable or refusing work: delays of
    `initial_s * 2**n`, capped at `max_s`, with jitter so workers spread out. Not a job's
    retry backoff (`conveyor.retry.Backoff`: when a failed job runs again)."""

    __slots__ = ("_failures", "initial_s", "max_s")

    def __init__(self, initial_s: float = 0.05, max_s: float = 5.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures

    def next_delay_s(self) -> float:
        base = min(self.max_s, self.initial_s * 2.0 ** min(self._failures, 30))
        self._failures += 1
        return base * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self._failures = 0
