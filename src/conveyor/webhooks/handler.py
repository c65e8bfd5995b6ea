"""The built-in `conveyor.webhook` job type: one job per (subscription, event), in queue
CONVEYOR_WEBHOOK_QUEUE, whose attempts are the delivery log (see delivery.py for what each
answer means). The payload names the subscription, never its secret: payloads are shown by
the API and the dashboard. Imported by `conveyor.handlers`, so it stays light: the HTTP
client is loaded by the first delivery.
"""

from __future__ import annotations

from typing import Any

from conveyor.handlers.context import JobContext
from conveyor.handlers.registry import handler
from conveyor.retry import ExponentialBackoff
from conveyor.webhooks.model import WEBHOOK_TYPE, WebhookPayload

#: defaults of CONVEYOR_WEBHOOK_MAX_ATTEMPTS / _RETRY_BASE_S / _RETRY_CAP_S: about a day of
#: retries; the fan-out stamps each job with the setting, and deliveries wait RetryLater
DEFAULT_MAX_ATTEMPTS = 15
#: above the largest CONVEYOR_WEBHOOK_TIMEOUT_S (60), which bounds one attempt itself
HANDLER_TIMEOUT_S = 120.0


@handler(
    WEBHOOK_TYPE,
    payload=WebhookPayload,
    max_attempts=DEFAULT_MAX_ATTEMPTS,
    backoff=ExponentialBackoff(base_s=30.0, cap_s=21600.0),
    timeout_s=HANDLER_TIMEOUT_S,
)
async def deliver_webhook(payload: WebhookPayload, ctx: JobContext) -> Any:
    from conveyor.webhooks.delivery import deliver
    from conveyor.webhooks.runtime import current_runtime

    return await deliver(payload, ctx, await current_runtime())
