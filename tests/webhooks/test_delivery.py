"""Deliveries end to end, on both brokers: events fanned out into `conveyor.webhook` jobs, run
by a real Worker, POSTed to a real receiver on a free port; every request's signature checked
by the spec-text verifier (spec_verifier.py), never by the code that signed it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from conveyor.events.model import EventName
from conveyor.jobs import JobState
from conveyor.webhooks.fanout import deliveries_for
from conveyor.webhooks.model import Subscription, message_id
from tests.support.typed import as_dict
from tests.webhooks.spec_verifier import verify
from tests.webhooks.webhook_receiver import always, failing_first
from tests.webhooks.webhook_support import WEBHOOK_QUEUE, Hooks, make_event, webhook_settings


def _verified(hit: Any, sub: Subscription) -> dict[str, Any]:
    verify(sub.secret.get_secret_value(), hit.body, hit.headers)
    body: dict[str, Any] = json.loads(hit.body)
    return body


async def test_a_flaky_receiver_gets_every_subscribed_event_signed(hooks: Hooks) -> None:
    rx = hooks.receiver(failing_first(8))  # the first 8 requests get a 500, whatever they carry
    done = await hooks.subscribe(rx.url("/done"), ["job.succeeded"])
    deaths = await hooks.subscribe(rx.url("/dead"), ["job.dead", "job.succeeded"],
                              queues=["reports"])
    events = [make_event(EventName.SUCCEEDED, queue="reports") for _ in range(4)]
    events += [make_event(EventName.DEAD, queue="reports") for _ in range(3)]
    events += [make_event(EventName.SUCCEEDED, queue="default") for _ in range(3)]
    events += [make_event(EventName.STARTED, queue="reports") for _ in range(2)]  # nobody's
    expected = {(done.id, message_id(e)) for e in events if e.event == EventName.SUCCEEDED}
    expected |= {(deaths.id, message_id(e)) for e in events
                 if e.queue == "reports" and e.event in (EventName.SUCCEEDED, EventName.DEAD)}
    job_ids = await hooks.fan_out(events, [done, deaths])
    assert len(job_ids) == len(expected) == 14
    async with hooks.run_worker():
        jobs = await hooks.finish(job_ids)
    assert all(j.state == JobState.SUCCEEDED for j in jobs), [j.last_error for j in jobs]

    subs = {"/done": done, "/dead": deaths}
    by_id = {message_id(e): e for e in events}
    delivered: set[tuple[str, str]] = set()
    hits = rx.snapshot()
    assert len(hits) == 14 + 8  # each delivery once, plus the 8 answered with a 500
    for n, hit in enumerate(hits, 1):
        sub = subs[hit.path]
        body = _verified(hit, sub)  # the failed attempts were signed too
        event = by_id[hit.headers["webhook-id"]]
        assert body == {"type": f"job.{event.event}", "timestamp": body["data"]["at"],
                        "data": event.as_json()}
        assert hit.headers["host"] == f"127.0.0.1:{rx.port}"
        assert hit.headers["content-type"] == "application/json"
        if n > 8:
            delivered.add((sub.id, hit.headers["webhook-id"]))
    assert delivered == expected
    retried = [j for j in jobs if j.attempts > 1]
    assert retried, "some deliveries must have met the 500s"
    for job in retried:  # the attempt history is the delivery log
        first = job.history[0]
        assert first.error_code == "webhook_http_error"
        assert first.message is not None and "HTTP 500: down for now" in first.message
        assert as_dict(job.result)["delivered"] is True and as_dict(job.result)["status"] == 200


async def test_an_endpoint_that_never_recovers_ends_dead_in_the_dlq(hooks: Hooks) -> None:
    rx = hooks.receiver(always(503))
    sub = await hooks.subscribe(rx.url(), ["job.dead"])
    job = await hooks.deliver_one(sub, make_event(EventName.DEAD), webhook_max_attempts=4)
    assert job.state == JobState.DEAD and job.attempts == 4
    assert job.last_error is not None and job.last_error.code == "webhook_http_error"
    assert [a.error_code for a in job.history] == ["webhook_http_error"] * 4
    assert all("HTTP 503" in (a.message or "") for a in job.history)
    assert len(rx.snapshot()) == 4
    page = await hooks.client.dlq_list(WEBHOOK_QUEUE)
    assert [j.id for j in page.items] == [job.id]
    for hit in rx.snapshot():
        _verified(hit, sub)


async def test_retry_after_is_honoured(hooks: Hooks) -> None:
    def respond(n: int, hit: Any) -> tuple[int, dict[str, str], bytes]:
        return (429, {"Retry-After": "2"}, b"slow down") if n == 1 else (200, {}, b"")

    rx = hooks.receiver(respond)
    sub = await hooks.subscribe(rx.url(), ["job.succeeded"])
    hooks.configure(settings=webhook_settings(webhook_retry_cap_s=30))  # backoff alone: < 0.05 s
    job = await hooks.deliver_one(sub, webhook_retry_cap_s=30)
    assert job.state == JobState.SUCCEEDED and job.attempts == 2
    first, second = rx.snapshot()
    assert second.at - first.at >= 1.9
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])


async def test_gone_disables_the_subscription_and_skips_its_other_deliveries(
    hooks: Hooks,
) -> None:
    rx = hooks.receiver(always(410))
    sub = await hooks.subscribe(rx.url(), ["job.succeeded"])
    [first] = await hooks.fan_out([make_event()], [sub])
    async with hooks.run_worker():
        [job] = await hooks.finish([first])
        assert job.state == JobState.DEAD and job.attempts == 1
        assert job.last_error is not None and job.last_error.code == "webhook_gone"
        stored = await hooks.store.get(sub.id)
        assert stored is not None and not stored.enabled
        assert stored.disabled_reason is not None and "410" in stored.disabled_reason
        # a delivery already enqueued before the 410 is skipped: nothing is sent
        [later] = await hooks.fan_out([make_event()], [sub])
        [skipped] = await hooks.finish([later])
    assert skipped.state == JobState.SUCCEEDED
    assert skipped.result == {"delivered": False, "skipped": "subscription_disabled",
                              "subscription_id": sub.id}
    assert len(rx.snapshot()) == 1
    assert deliveries_for(make_event(), [stored]) == []  # and the fan-out sends it none


async def test_a_client_error_is_retried_a_few_times_then_dead(hooks: Hooks) -> None:
    rx = hooks.receiver(always(404))
    sub = await hooks.subscribe(rx.url(), ["job.succeeded"])
    job = await hooks.deliver_one(sub)
    assert job.state == JobState.DEAD and job.attempts == 3  # of 10 allowed
    assert job.last_error is not None and job.last_error.code == "webhook_http_error"
    assert "given up after 3 attempts" in job.last_error.message
    assert len(rx.snapshot()) == 3


async def test_a_redirect_is_not_followed(hooks: Hooks) -> None:
    rx = hooks.receiver(lambda n, hit: (302, {"Location": "/elsewhere"}, b"")
                  if hit.path == "/hook" else (200, {}, b""))
    sub = await hooks.subscribe(rx.url(), ["job.succeeded"])
    job = await hooks.deliver_one(sub)
    assert job.state == JobState.DEAD
    assert job.last_error is not None and "Location: /elsewhere" in job.last_error.message
    assert {h.path for h in rx.snapshot()} == {"/hook"}


async def test_a_deleted_subscription_gets_nothing(hooks: Hooks) -> None:
    rx = hooks.receiver(always(200))
    sub = await hooks.subscribe(rx.url(), ["job.succeeded"])
    [job_id] = await hooks.fan_out([make_event()], [sub])
    assert await hooks.store.delete(sub.id)
    async with hooks.run_worker():
        [job] = await hooks.finish([job_id])
    assert job.state == JobState.SUCCEEDED
    assert as_dict(job.result)["skipped"] == "subscription_deleted"
    assert rx.snapshot() == []


async def test_no_answer_in_time_and_no_listener_are_retried(hooks: Hooks) -> None:
    def respond(n: int, hit: Any) -> tuple[int, dict[str, str], bytes]:
        if n == 1:
            time.sleep(1.5)  # past the 0.5 s timeout
        return 200, {}, b""

    rx = hooks.receiver(respond)
    closed = hooks.receiver(always(200))
    closed.stop()  # its port now refuses connections
    settings = webhook_settings(webhook_timeout_s=0.5, webhook_max_attempts=2)
    hooks.configure(settings=settings)
    slow = await hooks.subscribe(rx.url(), ["job.succeeded"])
    gone = await hooks.subscribe(closed.url(), ["job.succeeded"])
    job_ids = await hooks.fan_out([make_event()], [slow, gone], webhook_max_attempts=2)
    async with hooks.run_worker(settings=settings):
        late, refused = await hooks.finish(job_ids)
    assert late.state == JobState.SUCCEEDED and late.attempts == 2
    assert late.history[0].error_code == "webhook_timeout"
    assert refused.state == JobState.DEAD and refused.attempts == 2
    assert [a.error_code for a in refused.history] == ["webhook_unreachable"] * 2
    assert "cannot connect" in (refused.history[0].message or "")


async def test_a_re_read_event_is_delivered_once(hooks: Hooks) -> None:
    rx = hooks.receiver(always(200))
    sub = await hooks.subscribe(rx.url(), ["job.succeeded"])
    event = make_event()

    async def fan_out() -> list[Any]:
        requests = deliveries_for(event, [sub], settings=webhook_settings())
        return await hooks.client.enqueue_many(requests)

    first, again = await fan_out(), await fan_out()
    assert [r.created for r in first] == [True] and [r.created for r in again] == [False]
    assert again[0].job_id == first[0].job_id
    async with hooks.run_worker():
        await hooks.finish([first[0].job_id])
    later = await fan_out()
    assert later[0].created is False  # the finished job still holds the key
    assert len(rx.snapshot()) == 1
