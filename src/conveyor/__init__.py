"""Conveyor: a distributed job scheduler with a Redis-backed reliable queue."""

from conveyor.client import AsyncConveyor, Conveyor, JobRequest
from conveyor.errors import ErrorCode, JobError, PermanentError, RateLimited, RetryLater
from conveyor.handlers import JobContext, handler
from conveyor.jobs import Job, JobState

__all__ = [
    "AsyncConveyor",
    "Conveyor",
    "ErrorCode",
    "Job",
    "JobContext",
    "JobError",
    "JobRequest",
    "JobState",
    "PermanentError",
    "RateLimited",
    "RetryLater",
    "handler",
]
from conveyor._version import __version__ as __version__
