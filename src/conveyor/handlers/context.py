"""What a handler learns about the job it runs: ids, attempt numbers and a job-bound logger."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JOB_LOGGER_NAME = "conveyor.job"


@dataclass(frozen=True, slots=True)
class JobContext:
    """Passed as the second argument to handlers that declare one.

    `attempt` is 1-based and counts deliveries, so a handler can tell a first try from a retry.
    """

    job_id: str
    type: str
    queue: str
    attempt: int
    max_attempts: int
    worker_id: str
    logger: logging.Logger | logging.LoggerAdapter[Any] = field(
        default_factory=lambda: logging.getLogger(JOB_LOGGER_NAME)
    )
    #: this delivery's fencing token: lets a handler tag side effects (e.g. an outbox row)
    #: with the lease that produced them, so a stale run's writes can be told apart
    lease_token: str = ""
    #: set when an operator cancels the running job (`POST /v1/jobs/{id}/cancel`): read it
    #: through `cancelled`. None in a process-isolated handler (its child is killed instead).
    cancel_event: threading.Event | None = field(default=None, compare=False, repr=False)

    @property
    def cancelled(self) -> bool:
        """True once an operator asked to stop this job: a sync handler should check it
        between steps and return (the job then ends CANCELLED, whatever it returns). An async
        handler is cancelled outright (`asyncio.CancelledError` at its current await)."""
        return self.cancel_event is not None and self.cancel_event.is_set()
    #: where `progress` goes (the worker sets it; None: reports are dropped)
    reporter: Callable[[float, str | None], None] | None = field(default=None, repr=False,
                                                                  compare=False)

    def progress(self, value: float, message: str | None = None) -> None:
        """Report progress: a fraction 0-1 or a count (finite, >= 0), and a line of text
        (at most 1,000 characters). Stored on the job (`progress`) and emitted as a
        `progress` event, at most once a second (the last report always lands)."""
        if self.reporter is not None:
            self.reporter(value, message)

    @property
    def is_last_attempt(self) -> bool:
        """True when a retryable failure now would still send the job to DEAD."""
        return self.attempt >= self.max_attempts
