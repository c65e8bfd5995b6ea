"""A token bucket: paces a big redrive so it does not flood the workers.

Jobs are moved in small batches; each batch first takes as many tokens as it holds jobs.
N jobs at rate R therefore take at least (N - burst) / R seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from conveyor.errors import ValidationError

MAX_RATE = 100_000.0
#: the largest batch (and burst) whatever the rate
MAX_BURST = 100


class TokenBucket:
    def __init__(
        self, rate: float, burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not (
            math.isfinite(rate) and 0 < rate <= MAX_RATE
        ):
            raise ValidationError(
                f"rate must be > 0 and <= {MAX_RATE:g} jobs per second",
                details=[{"loc": ["rate"], "msg": "out of range", "value": rate}],
            )
        self.rate = float(rate)
        #: about 100 ms worth of jobs, so the pace is smooth
        self.burst = burst if burst is not None else max(1, min(MAX_BURST, math.ceil(rate / 10)))
        self._clock = clock
        self._tokens = float(self.burst)
        self._last = clock()

    def wait_s(self, n: int) -> float:
        """Seconds until `n` tokens are there (0 when they are now); spends nothing."""
        tokens = min(self.burst, self._tokens + (self._clock() - self._last) * self.rate)
        return max(0.0, (n - tokens) / self.rate)

    async def take(self, n: int) -> None:
        """Wait until `n` tokens (at most `burst`) are there, and spend them."""
        if not 0 < n <= self.burst:
            raise ValueError(f"take 1 to {self.burst} tokens at a time, not {n}")
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= n - 1e-9:  # float rounding must not strand a tiny remainder
                self._tokens = max(self._tokens - n, 0.0)
                return
            await asyncio.sleep((n - self._tokens) / self.rate)
