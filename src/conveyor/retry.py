"""Retry strategies (the seed's retry.ts): backoff curves and the policy that turns a failed
attempt into "retry after N seconds" or "give up, go DEAD".
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Protocol

from conveyor.errors import PermanentError, RetryLater
from conveyor.jobs import MAX_ATTEMPTS_LIMIT, MAX_DELAY_MS

MAX_DELAY_S = MAX_DELAY_MS / 1000
"""No retry waits longer than this (365 days), whoever asked for it."""

# Past 2**2100 every positive float overflows: stop doubling there so huge attempts stay cheap.
_MAX_DOUBLINGS = 2100


class Backoff(Protocol):
    """Delay in seconds before the next try; `attempt` is the 1-based attempt that just failed."""

    def __call__(self, attempt: int, /) -> float: ...


def _check_seconds(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt!r}")


def clamp_delay_s(delay_s: float) -> float:
    """Force any delay into [0, MAX_DELAY_S]; NaN (a broken backoff) means "retry now"."""
    try:
        value = float(delay_s)
    except OverflowError:  # an int beyond float range
        value = math.inf if delay_s > 0 else -math.inf
    if math.isnan(value):
        return 0.0
    return min(max(value, 0.0), MAX_DELAY_S)


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """base * 2**(attempt-1) capped; with jitter, uniform in [0, that] (AWS "full jitter"),
    which spreads a burst of failures instead of retrying them in lockstep."""

    base_s: float = 1.0
    cap_s: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        _check_seconds("base_s", self.base_s)
        _check_seconds("cap_s", self.cap_s)

    def ceiling_s(self, attempt: int) -> float:
        """The un-jittered delay: the upper bound of the jittered one."""
        _check_attempt(attempt)
        if self.base_s == 0:
            return 0.0
        try:
            raw = math.ldexp(self.base_s, min(attempt - 1, _MAX_DOUBLINGS))
        except OverflowError:
            return float(self.cap_s)
        return float(min(self.cap_s, raw))

    def __call__(self, attempt: int, /) -> float:
        ceiling = self.ceiling_s(attempt)
        return random.uniform(0.0, ceiling) if self.jitter else ceiling


@dataclass(frozen=True, slots=True)
class FixedBackoff:
    delay_s: float

    def __post_init__(self) -> None:
        _check_seconds("delay_s", self.delay_s)

    def __call__(self, attempt: int, /) -> float:
        _check_attempt(attempt)
        return float(self.delay_s)


@dataclass(frozen=True, slots=True)
class LinearBackoff:
    """step * attempt, capped."""

    step_s: float
    cap_s: float = 300.0

    def __post_init__(self) -> None:
        _check_seconds("step_s", self.step_s)
        _check_seconds("cap_s", self.cap_s)

    def __call__(self, attempt: int, /) -> float:
        _check_attempt(attempt)
        if self.step_s == 0:
            return 0.0
        # Compare before multiplying: a huge int attempt cannot be converted to a float.
        if attempt >= self.cap_s / self.step_s:
            return float(self.cap_s)
        return float(min(self.cap_s, self.step_s * attempt))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a job type retries: at most `max_attempts` deliveries, waiting `backoff` between."""

    max_attempts: int = 3
    backoff: Backoff = field(default_factory=ExponentialBackoff)

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT
        ):
            raise ValueError(
                f"max_attempts must be an integer in 1..{MAX_ATTEMPTS_LIMIT}, "
                f"got {self.max_attempts!r}"
            )
        if not callable(self.backoff):
            raise ValueError(f"backoff must be callable, got {self.backoff!r}")

    def next_delay_s(
        self, attempt: int, exc: BaseException, max_attempts: int | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None: do not retry, the job goes DEAD.

        `max_attempts` overrides the policy's own (a job may carry its own limit).
        """
        _check_attempt(attempt)
        if isinstance(exc, PermanentError):
            return None
        limit = self.max_attempts if max_attempts is None else max_attempts
        if attempt >= limit:
            return None
        if isinstance(exc, RetryLater):
            # The handler knows best (e.g. a Retry-After header): the backoff cap does not apply.
            return clamp_delay_s(exc.delay_s)
        return clamp_delay_s(self.backoff(attempt))
