"""The dashboard follows the job event stream (issue 17) in a real browser (Debian's Chromium
through Playwright) against real `conveyor api` / `conveyor worker` processes on the real
Redis: a queue page and a job page change when events arrive and ask nothing in between,
a flood of events is coalesced, a dropped stream resumes with `Last-Event-ID` (the events of
the drop arrive), and the ES modules load on every page without a console error.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from conveyor.client import Conveyor
from tests.support.env import REDIS_URL
from tests.support.waits import wait_until_sync as wait_until
from tests.ui.ui_support import Api, Browse, StartApi, StartWorker, spawn

pytestmark = pytest.mark.e2e

#: longer than the 2 s the pages used to poll at, shorter than the 10 s fallback poll
QUIET_MS = 4500
#: refreshes of one part a second, at most, however many events (dashboard/timing.js)
MAX_REFRESH_PER_S = 2
#: what the browser and htmx log when the API they talk to was killed (the drop test does)
DROPPED = re.compile(r"net::ERR_(CONNECTION_REFUSED|INCOMPLETE_CHUNKED_ENCODING|EMPTY_RESPONSE"
                     r"|CONNECTION_RESET)|^htmx:(afterRequest|sendError), ")


@dataclass
class Seen:
    """Requests of the page whose URL contains `part`, with when they were made."""

    part: str
    requests: list[tuple[float, Request]] = field(default_factory=list)

    def watch(self, page: Page) -> Seen:
        page.on("request", lambda r: self.requests.append((time.monotonic(), r))
                if self.part in r.url else None)
        return self

    def __len__(self) -> int:
        return len(self.requests)


def stream_open(page: Page) -> None:
    expect(page.locator("#live")).to_have_attribute("data-stream", "open")
    expect(page.locator("#live .live-text")).to_have_text("Live")


def quiet(page: Page, seen: Seen, what: str) -> None:
    """Nothing happens to the queue: the page must not ask for its fragment."""
    page.wait_for_timeout(500)  # the refresh made when the stream opened lands
    before = len(seen)
    page.wait_for_timeout(QUIET_MS)
    assert len(seen) == before, f"the {what} polled its fragment with no event: " + ", ".join(
        r.url for _, r in seen.requests[before:])


def test_a_job_enqueued_through_the_api_appears_on_the_open_queue_page_from_the_stream(
    services: tuple[StartApi, StartWorker], browse: Browse
) -> None:
    start_api, _ = services
    api = start_api()
    queue = "ui-live"
    page = browse.page
    fragments = Seen(f"/ui/f/queues/{queue}").watch(page)
    page.goto(f"{api.base_url}/ui/queues/{queue}")
    stream_open(page)
    expect(page.locator("#queue-jobs > .loading")).to_have_count(0)
    quiet(page, fragments, "queue page")

    before = len(fragments)
    enqueued_at = time.monotonic()
    job = api.enqueue("ui.gate", {"gate": "/nonexistent/gate"}, queue=queue)
    expect(page.locator(f'tr[data-job-row="{job["id"]}"]')).to_be_visible()
    expect(page.locator('#queue-head .tab[data-value="queued"] .tab-count')).to_have_text("1")
    asked = fragments.requests[before:]
    assert asked and all(at >= enqueued_at for at, _ in asked), "the update came before the event"
    browse.shot("queue-live")

    # A flood of events: the page refreshes at most MAX_REFRESH_PER_S times a second.
    before = len(fragments)
    started = time.monotonic()
    for n in range(150):
        api.enqueue("ui.gate", {"gate": "/nonexistent/gate", "n": n}, queue=queue)
    expect(page.locator('#queue-head .tab[data-value="queued"] .tab-count')).to_have_text("151")
    elapsed = time.monotonic() - started
    refreshes = len(fragments) - before
    assert 1 <= refreshes <= MAX_REFRESH_PER_S * elapsed + 2, (refreshes, elapsed)
    assert browse.errors == []


def first_event(api: Api, job_id: str, last_id: str) -> dict[str, object]:
    """The first event the API streams for `job_id` after the cursor `last_id`."""
    with api.http.stream("GET", "/v1/events", params={"job_id": job_id},
                         headers={"Last-Event-ID": last_id}, timeout=10.0) as res:
        assert res.status_code == 200, res.read()
        for line in res.iter_lines():
            if line.startswith("data:"):
                event: dict[str, object] = json.loads(line[5:])
                return event
    raise AssertionError("the stream ended before an event")


def test_the_job_page_follows_progress_and_state_and_resumes_after_the_stream_drops(
    services: tuple[StartApi, StartWorker], browse: Browse, tmp_path: Path, prefix: str
) -> None:
    start_api, start_worker = services
    api = start_api()
    queue = "ui-steps"
    steps = tmp_path / "steps"
    steps.mkdir()
    job_id = api.enqueue("ui.steps", {"dir": str(steps), "steps": 3}, queue=queue)["id"]
    page = browse.page
    fragments = Seen(f"/ui/f/jobs/{job_id}").watch(page)
    streams = Seen("/v1/events").watch(page)
    page.goto(f"{api.base_url}/ui/jobs/{job_id}")
    state = page.locator("h1[data-job-state]")
    expect(state).to_have_attribute("data-job-state", "queued")
    stream_open(page)
    quiet(page, fragments, "job page")

    start_worker(api, queues=queue)
    expect(state).to_have_attribute("data-job-state", "running")
    (steps / "step-1").touch()
    expect(page.locator("#job-progress-message")).to_have_text("step 1 of 3")
    expect(page.locator("#job-progress-value")).to_have_text("33 %")
    # log lines are not events: a running job's page looks for new ones
    expect(page.locator("#job-logs li .log-message").last).to_have_text("reached step 1")
    browse.shot("job-progress")

    # The API dies: the page says it only polls now; meanwhile the job moves on.
    port = int(api.base_url.rpartition(":")[2])
    api.service.proc.kill()
    api.service.proc.wait(timeout=10)
    expect(page.locator("#live")).to_have_attribute("data-stream", "polling")
    expect(page.locator("#status-banner")).to_be_visible()
    (steps / "step-2").touch()
    with Conveyor.from_url(REDIS_URL, key_prefix=prefix, validate_types=False) as cv:
        wait_until(lambda: (p := cv.get(job_id).progress) and p.message == "step 2 of 3",
                   "the worker to report step 2 while the API is down")
    browse.shot("job-stream-dropped")

    # Back on the same port: the page reconnects with the cursor of the last event it got,
    # and the event of the drop arrives.
    before = len(streams)
    again = spawn("api-again", ["api", "--port", str(port)], tmp_path=tmp_path, prefix=prefix,
                  env_extra={"CONVEYOR_API_KEYS": ""})
    try:
        wait_until(lambda: _answers(api), "the API to answer again", 20.0)
        expect(page.locator("#job-progress-message")).to_have_text("step 2 of 3", timeout=20_000)
        stream_open(page)
        expect(page.locator("#status-banner")).to_be_hidden()
        resumed = [r.headers.get("last-event-id") for _, r in streams.requests[before:]]
        last_id = next((h for h in reversed(resumed) if h), None)
        assert last_id and last_id.startswith(f"{queue}:"), resumed
        # that cursor is the one right before the drop: resuming from it gives step 2 first
        event = first_event(api, job_id, last_id)
        assert event["event"] == "progress", event
        assert event["progress"]["message"] == "step 2 of 3", event  # type: ignore[index]

        (steps / "step-3").touch()
        (steps / "done").touch()
        expect(state).to_have_attribute("data-job-state", "succeeded")
        expect(page.locator("#job-progress-value")).to_have_text("100 %")
        browse.shot("job-succeeded-live")
    finally:
        again.stop_sync()
        print(again.logs())
    assert [e for e in browse.errors if not DROPPED.search(e)] == [], browse.errors


def _answers(api: Api) -> bool:
    try:
        return api.http.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


PAGES = ["/ui/", "/ui/queues/ui-mods", "/ui/dlq", "/ui/workers", "/ui/webhooks",
         "/ui/schedules"]


def test_every_page_loads_its_modules_without_a_console_error(
    services: tuple[StartApi, StartWorker], browse: Browse
) -> None:
    start_api, _ = services
    api = start_api()
    job = api.enqueue("ui.gate", {"gate": "/nonexistent/gate"}, queue="ui-mods")
    page = browse.page
    modules = Seen("/ui/static/").watch(page)
    for path in [*PAGES, f"/ui/jobs/{job['id']}"]:
        page.goto(api.base_url + path)
        expect(page.locator("#live .live-text")).to_have_text("Live")
        expect(page.locator("[data-live] > .loading")).to_have_count(0)
        follows = page.locator("[data-follow]").count() > 0
        expect(page.locator("#live")).to_have_attribute("data-stream",
                                                         "open" if follows else "none")
        # modules, not globals: htmx (vendored, a classic script) is the only one
        assert page.evaluate("typeof window.htmx") == "object"
        assert page.evaluate("typeof window.ConveyorChart") == "undefined"
    scripts = {r.url.partition("?")[0].rpartition("/static/")[2] for _, r in modules.requests
               if r.url.partition("?")[0].endswith(".js")}
    assert {"dashboard.js", "chart.js", "dashboard/live.js", "dashboard/sse.js",
            "dashboard/state.js"} <= scripts, scripts
    for _, request in modules.requests:
        response = request.response()
        assert response is not None and response.status in (200, 304), request.url
    assert browse.errors == []


def test_the_stream_carries_the_tab_s_key_and_a_refused_one_is_not_retried(
    services: tuple[StartApi, StartWorker], browse: Browse
) -> None:
    start_api, _ = services
    api = start_api(keys="ui-key-1")
    queue = "ui-keyed"
    page = browse.page
    streams = Seen("/v1/events").watch(page)
    page.add_init_script("sessionStorage.setItem('conveyor.apiKey', 'ui-key-1')")
    page.goto(f"{api.base_url}/ui/queues/{queue}")
    stream_open(page)
    assert all(r.headers.get("authorization") == "Bearer ui-key-1" for _, r in streams.requests)
    job = api.enqueue("ui.gate", {"gate": "/nonexistent/gate"}, queue=queue)
    expect(page.locator(f'tr[data-job-row="{job["id"]}"]')).to_be_visible()

    # A revoked key: the stream is refused (401) and the page says so, without retrying it.
    page.add_init_script("sessionStorage.setItem('conveyor.apiKey', 'revoked')")
    before = len(streams)
    page.goto(f"{api.base_url}/ui/queues/{queue}")
    expect(page.locator("#live .live-text")).to_have_text("Key rejected")
    expect(page.locator("#key-dialog")).to_be_visible()
    page.wait_for_timeout(3000)  # longer than the first two reconnection delays (1 s, 2 s)
    refused = streams.requests[before:]
    assert len(refused) == 1, [r.url for _, r in refused]
    response = refused[0][1].response()
    assert response is not None and response.status == 401
    assert all("401" in e for e in browse.errors), browse.errors


PARSE = """async (chunks) => {
  const { readEvents } = await import("/ui/static/dashboard/sse.js");
  const enc = new TextEncoder();
  const body = new ReadableStream({ start(c) {
    for (const chunk of chunks) c.enqueue(enc.encode(chunk));
    c.close();
  } });
  const out = [];
  for await (const m of readEvents(body)) out.push(m);
  return out;
}"""


def test_the_sse_parser_follows_the_standard_across_chunk_boundaries(
    services: tuple[StartApi, StartWorker], browse: Browse
) -> None:
    start_api, _ = services
    api = start_api()
    page = browse.page
    page.goto(api.base_url + "/ui/workers")
    chunks = [
        "event: job\r", "\nid: q:1-0\r\ndata: {\"a\"", ":1}\r\n\r\n",  # CRLF split in two
        ": ping\r\n\r\n",                                                 # a comment only
        "event: gap\nid: q:2\ndata: x\ndata:y\n\n",                       # LF, two data lines
        "data: z\r\r",                                                    # CR alone
        "id: bad\0id\nevent: job\ndata: w\n\n",                           # NUL: id ignored
        "data: never dispatched",                                         # no blank line
    ]
    assert page.evaluate(PARSE, chunks) == [
        {"type": "job", "data": '{"a":1}', "id": "q:1-0"},
        {"type": "gap", "data": "x\ny", "id": "q:2"},
        {"type": "message", "data": "z", "id": "q:2"},
        {"type": "job", "data": "w", "id": "q:2"},
    ]
    assert browse.errors == []
