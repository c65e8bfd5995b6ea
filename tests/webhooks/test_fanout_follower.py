"""The webhook fan-out follower end to end (issue 17), on both brokers: a real Worker serves
a jobs queue and the webhooks queue; its maintenance follows the jobs queue's event log and
enqueues deliveries; a local receiver answers 500 for a while, then 200. Every subscribed
event arrives, each signature checks out with the `standardwebhooks` library and with the
spec-text verifier; an event read twice enqueues nothing new.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from conveyor.webhooks.follower import CURSOR_NAME, WebhookFanout
from spec_verifier import verify
from standardwebhooks import Webhook
from webhook_receiver import failing_first
from webhook_support import WEBHOOK_QUEUE, Hooks, webhook_settings
from worker_helpers import running, wait_for_state

from conveyor.brokers.base import Broker
from conveyor.handlers import default_registry
from conveyor.jobs import TERMINAL_STATES, JobState
from conveyor.worker import Worker

JOBS = "reports"


async def test_events_of_served_queues_become_signed_deliveries(
    hooks: Hooks, broker: Broker,
) -> None:
    rx = hooks.receiver(failing_first(5))
    sub = await hooks.subscribe(rx.url("/hook"), ["job.succeeded", "job.dead"],
                                queues=[JOBS])
    settings = webhook_settings()
    fanout = WebhookFanout(settings=settings, cache_ttl_s=0.0)
    await fanout(broker, [JOBS])  # first look: the cursor starts at the log's tail
    assert await broker.load_cursor(JOBS, CURSOR_NAME) is not None
    ok = [await hooks.client.enqueue("fake", {}, queue=JOBS) for _ in range(4)]
    bad = [await hooks.client.enqueue("fake", {"fail": True}, queue=JOBS, max_attempts=1)
           for _ in range(2)]
    worker = Worker(broker, queues=[JOBS, WEBHOOK_QUEUE], concurrency=8,
                    registry=default_registry, settings=settings,
                    maintenance_hooks=[fanout])
    async with running(worker):
        for job in ok + bad:
            await wait_for_state(hooks.client, job.id, TERMINAL_STATES, 30)
        expected = {j.id: "job.succeeded" for j in ok} | {j.id: "job.dead" for j in bad}
        for _ in range(600):
            delivered = [h for h in rx.snapshot() if h.status == 200]
            if len(delivered) >= len(expected):
                break
            await asyncio.sleep(0.05)
    hits = rx.snapshot()
    assert sum(1 for h in hits if h.status == 500) == 5
    got: dict[str, str] = {}
    wh = Webhook(sub.secret.get_secret_value())
    for hit in hits:
        verify(sub.secret.get_secret_value(), hit.body, hit.headers)
        body: dict[str, Any] = wh.verify(hit.body, dict(hit.headers))  # the library's check
        assert body == json.loads(hit.body)
        if hit.status == 200:
            assert body["data"]["job_id"] not in got, "each event delivered once"
            got[body["data"]["job_id"]] = body["type"]
    assert got == expected
    # reading the same events again (a cursor saved before a crash) enqueues nothing new
    before = (await hooks.client.stats([WEBHOOK_QUEUE]))[WEBHOOK_QUEUE]
    await broker.save_cursor(JOBS, CURSOR_NAME, "0")
    await fanout.step(broker, JOBS)
    after = (await hooks.client.stats([WEBHOOK_QUEUE]))[WEBHOOK_QUEUE]
    assert sum(after.values()) == sum(before.values())
    assert all(s == JobState.SUCCEEDED for s in [
        (await hooks.client.get(j.id)).state for j in ok])
