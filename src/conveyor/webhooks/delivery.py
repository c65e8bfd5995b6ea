"""One delivery attempt of a `conveyor.webhook` job, and what its outcome means for the job.

- 2xx: delivered (the job's result says status, address, time taken).
- 410 Gone: the receiver wants no more: the subscription is disabled, the job DEAD
  (`webhook_gone`); its other pending deliveries are skipped.
- 408, 425, 429, 5xx, a timeout, no connection, a name that does not resolve: retried after
  `Retry-After` (at most CONVEYOR_WEBHOOK_RETRY_CAP_S) or the exponential backoff, until
  the job's attempts run out (then DEAD, redrivable from the DLQ).
- Any other answer (3xx: redirects are not followed, 4xx): retried, but only while fewer
  than CLIENT_ERROR_ATTEMPTS attempts were made (a deploy may fix a 404), then DEAD.
- A refused address (the name now resolves somewhere private): DEAD at once.
- The subscription deleted or disabled meanwhile: nothing sent, the job succeeds ("skipped").

Every failure's message names the URL and the status with the start of the answer, so the
job's attempt history is the delivery log.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from conveyor.errors import ErrorCode, PermanentError, RetryLater, ValidationError
from conveyor.handlers.context import JobContext
from conveyor.retry import ExponentialBackoff
from conveyor.settings import Settings
from conveyor.webhooks.model import Subscription, WebhookPayload, message_id, webhook_body
from conveyor.webhooks.sender import Answer, SendError, post
from conveyor.webhooks.signing import signature_headers
from conveyor.webhooks.urls import (
    ADDRESS_REASONS,
    WebhookUrlError,
    checked_addresses,
    parse_webhook_url,
)

if TYPE_CHECKING:
    from conveyor.webhooks.runtime import WebhookRuntime

#: attempts a 3xx / plain 4xx answer gets before the delivery is given up
CLIENT_ERROR_ATTEMPTS = 3
#: statuses that mean "later" rather than "never"
RETRY_STATUSES = frozenset({408, 425, 429})
SHOWN_BODY = 300


def retry_delay_s(attempt: int, retry_after_s: float | None, settings: Settings) -> float:
    """Retry-After when the receiver gave one (capped), else exponential with full jitter."""
    cap = settings.webhook_retry_cap_s
    if retry_after_s is not None:
        return min(retry_after_s, cap)
    return ExponentialBackoff(base_s=settings.webhook_retry_base_s, cap_s=cap)(attempt)


def _describe(url: str, answer: Answer) -> str:
    text = f"POST {url} -> HTTP {answer.status}"
    if answer.location and 300 <= answer.status < 400:
        text += f" (redirects are not followed; Location: {answer.location[:200]})"
    if answer.body:
        text += f": {answer.body[:SHOWN_BODY]}"
    return text


async def _judge(
    answer: Answer, sub: Subscription, ctx: JobContext, rt: WebhookRuntime, msg_id: str
) -> dict[str, Any]:
    status = answer.status
    if 200 <= status < 300:
        ctx.logger.info("webhook_delivered", extra={"url": sub.url, "status": status,
                                                    "subscription_id": sub.id})
        return {"delivered": True, "status": status, "url": sub.url, "webhook_id": msg_id,
                "address": answer.address, "duration_ms": answer.elapsed_ms}
    text = _describe(sub.url, answer)
    if status == 410:
        await rt.store.disable(sub.id, f"HTTP 410 Gone from {sub.url} (job {ctx.job_id})")
        raise PermanentError(f"{text} (the subscription is now disabled)",
                             code=ErrorCode.WEBHOOK_GONE)
    delay = retry_delay_s(ctx.attempt, answer.retry_after_s, rt.settings)
    if status in RETRY_STATUSES or status >= 500:
        raise RetryLater(delay, text, code=ErrorCode.WEBHOOK_HTTP_ERROR)
    if ctx.attempt >= CLIENT_ERROR_ATTEMPTS:
        raise PermanentError(f"{text} (given up after {ctx.attempt} attempts: fix the "
                             "endpoint, then redrive)", code=ErrorCode.WEBHOOK_HTTP_ERROR)
    raise RetryLater(delay, text, code=ErrorCode.WEBHOOK_HTTP_ERROR)


async def deliver(payload: WebhookPayload, ctx: JobContext, rt: WebhookRuntime) -> Any:
    """Run one attempt; returns the job result or raises what the job's next step is."""
    sub = await rt.store.get(payload.subscription_id)
    if sub is None or not sub.enabled:
        why = "subscription_deleted" if sub is None else "subscription_disabled"
        ctx.logger.info("webhook_skipped", extra={"reason": why,
                                                  "subscription_id": payload.subscription_id})
        return {"delivered": False, "skipped": why, "subscription_id": payload.subscription_id}
    settings = rt.settings
    event = payload.event
    msg_id = message_id(event)
    body = webhook_body(event)
    backoff = retry_delay_s(ctx.attempt, None, settings)
    try:
        async with asyncio.timeout(settings.webhook_timeout_s):
            target = parse_webhook_url(sub.url)
            addresses = await checked_addresses(
                target, allow_private=settings.webhook_allow_private, resolver=rt.resolver
            )
            headers = signature_headers(sub.secret.get_secret_value(), msg_id, body)
            answer = await post(target, addresses, body.encode(), headers,
                                timeout_s=settings.webhook_timeout_s, verify=rt.verify)
    except WebhookUrlError as exc:
        text = f"POST {sub.url} refused: {exc.message}"
        if exc.reason == "unresolvable":
            raise RetryLater(backoff, text, code=ErrorCode.WEBHOOK_UNREACHABLE) from None
        if exc.reason in ADDRESS_REASONS:
            raise PermanentError(text, code=ErrorCode.WEBHOOK_ADDRESS_REFUSED) from None
        raise PermanentError(text, code=ValidationError.code) from None
    except TimeoutError:
        raise RetryLater(backoff, f"POST {sub.url}: no answer within "
                         f"{settings.webhook_timeout_s:g}s", code=ErrorCode.WEBHOOK_TIMEOUT
                         ) from None
    except SendError as exc:
        code = ErrorCode.WEBHOOK_TIMEOUT if exc.kind == "timeout" else (
            ErrorCode.WEBHOOK_UNREACHABLE)
        raise RetryLater(backoff, f"POST {sub.url}: {exc.message}", code=code) from None
    return await _judge(answer, sub, ctx, rt, msg_id)
