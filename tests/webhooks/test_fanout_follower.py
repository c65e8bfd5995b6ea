"""The webhook fan-out follower end to end (issue 17), on both brokers: a real Worker serves
a jobs queue and the webhooks queue; its maintenance follows the jobs queue's event log and
enqueues deliveries; a local receiver answers 500 for a while, then 200. Every subscribed
event arrives once, each signature checks out with the `standardwebhooks` library and with
the spec-text verifier; an event read twice enqueues nothing new.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from standardwebhooks import Webhook

from conveyor.brokers.base import Broker
from conveyor.handlers import default_registry
from conveyor.jobs import TERMINAL_STATES, JobState
from conveyor.webhooks.follower import CURSOR_NAME, WebhookFanout
from conveyor.worker import Worker
from tests.support.inproc import running
from tests.support.waits import wait_for_state
from tests.webhooks.spec_verifier import verify
from tests.webhooks.webhook_receiver import failing_first
from tests.webhooks.webhook_support import WEBHOOK_QUEUE, Hooks, webhook_settings

JOBS = "reports"
FAILING = 5


async def test_events_of_served_queues_become_signed_deliveries(
    hooks: Hooks, broker: Broker,
) -> None:
    rx = hooks.receiver(failing_first(FAILING))
    sub = await hooks.subscribe(rx.url("/hook"), ["job.succeeded", "job.dead"],
                                queues=[JOBS])
    settings = webhook_settings()
    fanout = WebhookFanout(settings=settings, cache_ttl_s=0.0)
    await fanout(broker, [JOBS])  # first look: the cursor starts at the log's tail
    assert await broker.load_cursor(JOBS, CURSOR_NAME) is not None
    ok = [await hooks.client.enqueue("fake", {}, queue=JOBS) for _ in range(4)]
    bad = [await hooks.client.enqueue("fake", {"permanent": True}, queue=JOBS, max_attempts=1)
           for _ in range(2)]
    expected = {j.id: "job.succeeded" for j in ok} | {j.id: "job.dead" for j in bad}
    worker = Worker(broker, queues=[JOBS, WEBHOOK_QUEUE], concurrency=8,
                    registry=default_registry, settings=settings,
                    maintenance_hooks=[fanout])
    async with running(worker):
        for job in ok + bad:
            await wait_for_state(hooks.client, job.id, TERMINAL_STATES, 30)
        for _ in range(600):
            if len(rx.snapshot()) >= len(expected) + FAILING:
                break
            await asyncio.sleep(0.05)
    hits = rx.snapshot()
    assert len(hits) == len(expected) + FAILING
    got: dict[str, str] = {}
    wh = Webhook(sub.secret.get_secret_value())
    for n, hit in enumerate(hits, 1):
        verify(sub.secret.get_secret_value(), hit.body, hit.headers)
        body: Any = wh.verify(hit.body, dict(hit.headers))  # the library's own check
        assert body == json.loads(hit.body)
        if n > FAILING:
            assert body["data"]["job_id"] not in got, "each event delivered once"
            got[body["data"]["job_id"]] = body["type"]
    assert got == expected
    assert {(await hooks.client.get(j.id)).state for j in ok} == {JobState.SUCCEEDED}
    # reading the same events again (a cursor saved before a crash) enqueues nothing new
    before = sum((await hooks.client.stats([WEBHOOK_QUEUE]))[WEBHOOK_QUEUE].values())
    await broker.save_cursor(JOBS, CURSOR_NAME, "0")
    assert await fanout.step(broker, JOBS) == len(expected)  # the same idempotency keys
    after = sum((await hooks.client.stats([WEBHOOK_QUEUE]))[WEBHOOK_QUEUE].values())
    assert after == before
