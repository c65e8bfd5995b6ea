"""Error types and the stable error codes shared by the API, the worker and the client.

The codes are part of the public contract (HTTP bodies, job records, CLI output): never rename
one, only add.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "validation_error"
    UNKNOWN_JOB_TYPE = "unknown_job_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    JOB_NOT_FOUND = "job_not_found"
    INVALID_STATE = "invalid_state"
    UNAUTHORIZED = "unauthorized"
    HANDLER_ERROR = "handler_error"
    TIMEOUT = "timeout"
    LEASE_EXPIRED = "lease_expired"
    LEASE_LOST = "lease_lost"
    PERMANENT_FAILURE = "permanent_failure"
    CANCELLED = "cancelled"
    BROKER_UNAVAILABLE = "broker_unavailable"
    BROKER_MISCONFIGURED = "broker_misconfigured"
    BROKER_FULL = "broker_full"
    QUEUE_NOT_FOUND = "queue_not_found"
    CORRUPT_JOB = "corrupt_job"
    RESULT_TOO_LARGE = "result_too_large"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    WORKER_SHUTDOWN = "worker_shutdown"
    SMTP_TRANSIENT = "smtp_transient"
    SMTP_PERMANENT = "smtp_permanent"
    CORRUPT_RECORD = "corrupt_record"
    WEBHOOK_ADDRESS_REFUSED = "webhook_address_refused"
    WEBHOOK_HTTP_ERROR = "webhook_http_error"
    WEBHOOK_GONE = "webhook_gone"
    WEBHOOK_UNREACHABLE = "webhook_unreachable"
    WEBHOOK_TIMEOUT = "webhook_timeout"
    PARTIAL_ENQUEUE = "partial_enqueue"
    WAIT_TIMEOUT = "wait_timeout"
    JOB_FAILED = "job_failed"
    WEBHOOK_NOT_FOUND = "webhook_not_found"
    SCHEDULE_NOT_FOUND = "schedule_not_found"
    RATE_LIMITED = "rate_limited"


class ConveyorError(Exception):
    """Base of every error Conveyor raises on purpose; carries a stable code."""

    code: str = ErrorCode.HANDLER_ERROR

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "details": self.details}


class ValidationError(ConveyorError):
    code = ErrorCode.VALIDATION_ERROR


class UnknownJobType(ConveyorError):
    code = ErrorCode.UNKNOWN_JOB_TYPE


class PayloadTooLarge(ConveyorError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class JobNotFound(ConveyorError):
    code = ErrorCode.JOB_NOT_FOUND


class InvalidState(ConveyorError):
    code = ErrorCode.INVALID_STATE


class IdempotencyConflict(ConveyorError):
    code = ErrorCode.IDEMPOTENCY_CONFLICT


class BrokerUnavailable(ConveyorError):
    code = ErrorCode.BROKER_UNAVAILABLE


class PartialEnqueue(ConveyorError):
    """A batch over several Redis Cluster nodes of which some jobs were stored and some not
    confirmed (a node failed meanwhile; a timed-out call may still land). `details` names
    the `stored` and the `unconfirmed` ids; resending the batch is safe (each job keeps its
    id). Not a 5xx: the stored jobs exist."""

    code = ErrorCode.PARTIAL_ENQUEUE


class BrokerFull(BrokerUnavailable):
    """The broker is reachable but out of memory and refuses writes (Redis `maxmemory` with
    `noeviction`). A kind of unavailability: callers back off and retry as they would."""

    code = ErrorCode.BROKER_FULL


class QueueNotFound(ConveyorError):
    code = ErrorCode.QUEUE_NOT_FOUND


class WebhookNotFound(ConveyorError):
    code = ErrorCode.WEBHOOK_NOT_FOUND
class ScheduleNotFound(ConveyorError):
    code = ErrorCode.SCHEDULE_NOT_FOUND


class BrokerMisconfigured(ConveyorError):
    """The broker is reachable but set up so that jobs could be lost (e.g. eviction on)."""

    code = ErrorCode.BROKER_MISCONFIGURED


class CorruptJob(ConveyorError):
    """A record read back from the broker does not parse as a job."""

    code = ErrorCode.CORRUPT_JOB


class CorruptRecord(ConveyorError):
    """A stored record other than a job (e.g. a webhook subscription) does not parse."""

    code = ErrorCode.CORRUPT_RECORD


class WaitTimeout(ConveyorError):
    """`wait` / `result`: the job was not finished (SUCCEEDED, DEAD or CANCELLED) in time.
    `job` is its state when the wait ended."""

    code = ErrorCode.WAIT_TIMEOUT

    def __init__(self, message: str, *, job: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.job = job


class JobFailed(ConveyorError):
    """`result`: the job finished DEAD or CANCELLED. `job` is the job, `error_code` and
    `message` its last error."""

    code = ErrorCode.JOB_FAILED

    def __init__(self, message: str, *, job: Any = None, error_code: str | None = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.job = job
        self.error_code = error_code


# --- raised by handlers -------------------------------------------------------------------


class JobError(ConveyorError):
    """A retryable failure raised by a handler, with a code of the handler's choosing."""

    code = ErrorCode.HANDLER_ERROR


class PermanentError(ConveyorError):
    """Raised by a handler when retrying cannot help: the job goes to DEAD at once."""

    code = ErrorCode.PERMANENT_FAILURE


class RetryLater(ConveyorError):
    """Raised by a handler to ask for a retry after a specific delay (seconds)."""

    code = ErrorCode.HANDLER_ERROR

    def __init__(self, delay_s: float, message: str = "retry requested", **kw: Any) -> None:
        if delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        super().__init__(message, **kw)
        self.delay_s = float(delay_s)


#: the longest hold a RateLimited may ask for (one day)
RATE_LIMITED_MAX_S = 86_400.0


class RateLimited(ConveyorError):
    """Raised by a handler whose upstream said "too many requests" (an HTTP 429): the job is
    released without charging an attempt and its limit key (its queue, for a job without
    one) is held for `retry_after_s` (at most a day), so no job of that key starts meanwhile.
    """

    code = ErrorCode.RATE_LIMITED

    def __init__(self, retry_after_s: float, message: str = "rate limited upstream",
                 **kw: Any) -> None:
        if isinstance(retry_after_s, bool) or not isinstance(retry_after_s, int | float) or not (
            0 <= retry_after_s < float("inf")
        ):
            raise ValueError("retry_after_s must be a finite number >= 0")
        super().__init__(message, **kw)
        self.retry_after_s = min(float(retry_after_s), RATE_LIMITED_MAX_S)


class JobTimeout(ConveyorError):
    code = ErrorCode.TIMEOUT
