"""The dashboard's running jobs and what it says when things go wrong (issue 12, items 10-12),
in Debian's Chromium against a real `conveyor api` and `conveyor worker` on the real Redis:

- the Workers page and a queue's Running tab show each running job's type, start, run time
  and worker; a running job is stopped from its page (its worker hears of it with its next
  heartbeat, stops the handler and ends it CANCELLED); a job whose worker is gone is ended
  CANCELLED by reaping, and the page shows the request meanwhile;
- lists show payload previews, the type filter suggests the known types, a dead job's page
  says why it has no result, and every page fits a phone's width (375 px);
- a broker that is down and a rejected key are said in words, never "Loading…" forever.

Every step is saved as a screenshot (see `conftest.browse`).
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from conveyor.brokers.base import LeaseRef
from conveyor.brokers.redis import RedisBroker
from conveyor.jobs import Delivery
from tests.support.env import REDIS_URL
from tests.support.processes import free_port
from tests.support.waits import wait_until_sync
from tests.ui.ui_support import START_TIMEOUT_S, Browse, StartApi, StartWorker, spawn

pytestmark = pytest.mark.e2e

QUEUE = "ui-run"
PHONE = {"width": 375, "height": 812}
#: heartbeats (cancel requests) and registrations (the jobs a worker reports) often
FAST_BEATS = {"CONVEYOR_HEARTBEAT_INTERVAL_S": "0.3", "CONVEYOR_WORKER_TTL_S": "1.5"}


class Ghost:
    """A worker of the test's own: it takes one job and keeps its lease alive (heartbeats,
    short lease) but never runs it nor listens to cancel requests, until `vanish()`: then it
    stops heart-beating, as a worker that died. Its loop runs in a thread (Playwright's sync
    API owns this thread's event loop)."""

    LEASE_MS = 2_000

    def __init__(self, prefix: str, queue: str) -> None:
        self._prefix, self._queue = prefix, queue
        self._taken = threading.Event()
        self._gone = threading.Event()
        self.delivery: Delivery | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def take(self) -> Delivery:
        self._thread.start()
        assert self._taken.wait(20) and self.delivery is not None, "the ghost took nothing"
        return self.delivery

    def vanish(self) -> None:
        self._gone.set()
        self._thread.join(timeout=20)

    async def _main(self) -> None:
        broker = RedisBroker.from_url(REDIS_URL, key_prefix=self._prefix)
        await broker.connect()
        try:
            batch = await broker.fetch(self._queue, 1, "ghost-worker", self.LEASE_MS)
            self.delivery = batch.deliveries[0] if batch.deliveries else None
            self._taken.set()
            while self.delivery is not None and not self._gone.is_set():
                await broker.heartbeat([LeaseRef(self.delivery.job_id, self.delivery.token)],
                                       self.LEASE_MS)
                await asyncio.sleep(0.3)
        finally:
            self._taken.set()
            await broker.close()


def running(api: Any, job_id: str) -> bool:
    return bool((api.job(job_id) or {}).get("state") == "running")


def fits_width(page: Page, width: int) -> None:
    """Nothing makes the page wider than the screen (wide tables scroll inside their card)."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll}px wide on a {width}px screen"
    # a table wider than its card scrolls inside it, never cut off by the card's edge
    clipped = page.evaluate("""Array.from(document.querySelectorAll('.card table.table'))
        .filter(t => !t.closest('.table-wrap')
                     && t.scrollWidth > t.closest('.card').clientWidth + 1).length""")
    assert clipped == 0, f"{page.url}: {clipped} table(s) cut off at {width}px"


def test_running_jobs_show_type_start_run_time_and_worker_and_stop_from_the_page(
    services: tuple[StartApi, StartWorker], browse: Browse, prefix: str
) -> None:
    start_api, start_worker = services
    api = start_api()
    page = browse.page

    # A job held by a worker that will vanish (it never runs it, nor hears a cancel).
    orphan = api.enqueue("ui.slow", {"seconds": 120, "who": "orphan"}, queue=QUEUE)["id"]
    ghost = Ghost(prefix, QUEUE)
    try:
        assert ghost.take().job_id == orphan
        worker = start_worker(api, queues=QUEUE, env=FAST_BEATS)
        worker_id = next(w["id"] for w in api.http.get("/v1/workers").json()["items"]
                         if w["pid"] == worker.proc.pid)
        slow = api.enqueue("ui.slow", {"seconds": 120, "report": "q3"}, queue=QUEUE)["id"]
        slow_sync = api.enqueue("ui.slow_sync", {"seconds": 120}, queue=QUEUE)["id"]
        wait_until_sync(lambda: running(api, slow) and running(api, slow_sync), "both jobs to run")
        wait_until_sync(lambda: {slow, slow_sync} <= {j for w in api.http.get("/v1/workers").json()[
            "items"] for j in w["jobs"]}, "the worker to report both jobs")

        # Workers page: per running job its type, start, run time and worker.
        page.goto(api.base_url + "/ui/workers")
        job_row = page.locator(f'tr[data-running-job="{slow}"]')
        expect(job_row.locator('[data-col="type"]')).to_have_text("ui.slow")
        expect(job_row.locator('[data-col="worker"]')).to_have_text(worker_id)
        expect(job_row.locator('[data-col="started"] time')).to_be_attached()
        expect(job_row.locator('[data-col="runtime"]')).to_have_text(re.compile(r"^\d+\.\d s$"))
        expect(job_row).to_contain_text('"report":"q3"')
        sync_row = page.locator(f'tr[data-running-job="{slow_sync}"]')
        expect(sync_row.locator('[data-col="type"]')).to_have_text("ui.slow_sync")
        expect(page.locator(f'tr[data-worker-row="{worker_id}"]')).to_contain_text("2 / 4")
        first = job_row.locator('[data-col="runtime"]').inner_text()
        expect(job_row.locator('[data-col="runtime"]')).not_to_have_text(first)  # it ticks
        browse.shot("workers-running-jobs")

        # The queue's Running tab: the same columns, the orphan's ghost worker included.
        page.goto(f"{api.base_url}/ui/queues/{QUEUE}?state=running")
        expect(page.locator(".tab.active")).to_contain_text("Running 3")
        expect(page.locator("#jobs-table tbody tr")).to_have_count(3)
        row = page.locator(f'tr[data-job-row="{slow}"]')
        expect(row.locator('[data-col="worker"]')).to_have_text(worker_id)
        expect(row.locator('[data-col="type"]')).to_have_text("ui.slow")
        expect(row.locator('[data-col="runtime"]')).to_have_text(re.compile(r"\d s$"))
        expect(page.locator(f'tr[data-job-row="{orphan}"] [data-col="worker"]')).to_have_text(
            "ghost-worker")
        browse.shot("queue-running-tab")

        # Stop the async job from its page: confirmed, then its worker cancels the handler.
        page.goto(f"{api.base_url}/ui/jobs/{slow}")
        expect(page.locator("#job-worker")).to_have_text(worker_id)
        expect(page.locator("#job-no-result")).to_have_text("No result yet: the job is running.")
        page.click('[data-action="cancel"]')
        expect(page.locator("#confirm-dialog")).to_contain_text("Stop this running job?")
        browse.shot("job-stop-confirm")
        page.click("#confirm-ok")
        expect(page.locator(".toast").last).to_contain_text("Stop requested")
        expect(page.locator(".job-title .badge")).to_have_text("cancelled")
        last = page.locator("#job-history li").last
        expect(last.locator(".badge")).to_have_text("cancelled")
        expect(last).to_contain_text("cancelled by api while running")
        expect(last).to_contain_text(worker_id)
        expect(page.locator("#job-no-result")).to_have_text("No result: the job was cancelled.")
        browse.shot("job-stopped")

        # The sync one through the API: its handler sees ctx.cancelled and returns.
        res = api.http.post(f"/v1/jobs/{slow_sync}/cancel")
        assert res.status_code == 202 and res.json()["cancel_requested"], res.text
        wait_until_sync(lambda: (api.job(slow_sync) or {}).get("state") == "cancelled",
                   "the sync job to end cancelled")

        # The orphan: the request shows until reaping ends it CANCELLED (never QUEUED again).
        page.goto(f"{api.base_url}/ui/jobs/{orphan}")
        page.click('[data-action="cancel"]')
        page.click("#confirm-ok")
        expect(page.locator("#cancel-note")).to_contain_text("Cancel requested by api")
        expect(page.locator(".head-actions button")).to_have_text("Stopping…")
        expect(page.locator("#job-worker")).to_have_text("ghost-worker")
        browse.shot("job-stop-requested")
        ghost.vanish()  # its lease expires, and reaping ends the job
        expect(page.locator(".job-title .badge")).to_have_text("cancelled", timeout=20_000)
        expect(page.locator("#job-history li").last).to_contain_text("lease expired first")
        browse.shot("job-orphan-cancelled-by-reaping")
        done = api.job(orphan)
        assert done is not None and done["state"] == "cancelled"
        assert all(h["outcome"] != "lease_expired" for h in done["history"])

        page.goto(api.base_url + "/ui/workers")
        expect(page.locator(f'tr[data-worker-row="{worker_id}"]')).to_contain_text("0 / 4")
        assert browse.errors == []
    finally:
        ghost.vanish()  # never left heart-beating past the test


def test_lists_show_payloads_and_known_types_a_dead_job_says_why_and_phones_fit(
    services: tuple[StartApi, StartWorker], browse: Browse, tmp_path: Path
) -> None:
    start_api, start_worker = services
    api = start_api()
    start_worker(api, queues="ui-lists")
    gate = tmp_path / "gate-closed"
    gate.touch()
    dead = api.enqueue("ui.gate", {"gate": str(gate)}, queue="ui-lists")["id"]
    done = api.enqueue("fake", {"duration_ms": 1, "result": "hello-preview"},
                       queue="ui-lists")["id"]
    long = api.enqueue("fake", {"duration_ms": 1, "result": "x" * 300}, queue="ui-lists")["id"]
    wait_until_sync(lambda: all((api.job(j) or {}).get("state") in ("succeeded", "dead")
                           for j in (dead, done, long)), "the jobs to finish")
    page = browse.page

    page.goto(api.base_url + "/ui/queues/ui-lists")
    # one line of compact JSON (as validated: the type's defaults filled in), cut at 60
    # characters; the whole of it (up to 400) on hover
    preview = page.locator(f'tr[data-job-row="{done}"] [data-col="payload"]')
    expect(preview).to_have_text(re.compile(r'^\{"duration_ms":1,.{20,}…$'))
    expect(preview).to_have_attribute("title", re.compile(r'"result":"hello-preview"\}$'))
    cut = page.locator(f'tr[data-job-row="{long}"] [data-col="payload"]')
    expect(cut).to_have_attribute("title", re.compile(r'"result":"x{300}"\}$'))
    # the type filter suggests the registry's types and the types seen
    options = page.locator("#known-types option")
    expect(options).not_to_have_count(0)
    values = set(options.evaluate_all("os => os.map(o => o.value)"))
    assert {"fake", "email.send", "ui.gate", "ui.slow", "ui.slow_sync"} <= values, values
    browse.shot("queue-payload-preview")

    page.goto(api.base_url + "/ui/dlq")
    expect(page.locator(f'tr[data-job-row="{dead}"]')).to_contain_text(str(gate))
    page.goto(f"{api.base_url}/ui/jobs/{dead}")
    expect(page.locator(".job-title .badge")).to_have_text("dead")
    expect(page.locator("#job-no-result")).to_have_text(
        "No result: the job died (see its last error and history).")
    expect(page.locator("#job")).not_to_contain_text("No result yet")
    browse.shot("dead-job-page")

    # Phone width: every page fits, nothing is cut off sideways.
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    for name, path in (("overview", "/ui/"), ("queue", "/ui/queues/ui-lists"),
                       ("job", f"/ui/jobs/{dead}"), ("dlq", "/ui/dlq"),
                       ("workers", "/ui/workers"), ("webhooks", "/ui/webhooks")):
        page.goto(api.base_url + path)
        expect(page.locator("#live .live-text")).to_have_text("Live")
        expect(page.locator("[data-live] > .loading")).to_have_count(0)
        fits_width(page, PHONE["width"])
        if name == "overview":  # item 13: the charts say what they show (here: the broker's)
            source = page.locator(".chart-card h2 [data-chart-source]")
            expect(source).to_have_count(2)
            expect(source.first).to_be_visible()
            expect(source.first).to_have_text("counted by the broker per minute")
            expect(page.locator(".chart-card h2 [data-chart-fallback]").first).to_be_hidden()
        browse.shot(f"phone-{name}")
    assert browse.errors == []


def test_a_broker_that_is_down_and_a_rejected_key_are_said_plainly(
    services: tuple[StartApi, StartWorker], browse: Browse, tmp_path: Path, prefix: str
) -> None:
    page = browse.page
    # An API whose Redis does not answer (nothing listens on that port).
    port = free_port()
    down = spawn("api-down", ["api", "--port", str(port)], tmp_path=tmp_path, prefix=prefix,
                 env_extra={"CONVEYOR_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    base = f"http://127.0.0.1:{port}"
    try:
        def alive() -> bool:
            assert down.running(), down.logs()
            try:
                return httpx.get(base + "/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until_sync(alive, "the API to answer /healthz", START_TIMEOUT_S)
        for name, path in (("overview", "/ui/"), ("workers", "/ui/workers"),
                           ("job", f"/ui/jobs/{QUEUE}:{'0' * 32}")):
            page.goto(base + path)
            expect(page.locator("#live .live-text")).to_have_text("Broker unavailable")
            expect(page.locator("[data-live] > .loading")).to_contain_text(
                "The broker is unavailable (503)")
            expect(page.locator("#status-banner")).to_be_visible()
            expect(page.locator("#status-banner")).to_contain_text("broker is unavailable")
            browse.shot("broker-down-" + name)
        assert all("503" in e for e in browse.errors), browse.errors
    finally:
        page.goto("about:blank")  # no poll left to hit the stopped API
        down.stop_sync()
        print(down.logs())

    # A key this tab holds that the API rejects (wrong, or revoked since).
    start_api, _ = services
    api = start_api(keys="right-key")
    page.goto(api.base_url + "/ui/")
    page.evaluate("sessionStorage.setItem('conveyor.apiKey', 'revoked-key')")
    browse.errors.clear()
    page.reload()
    expect(page.locator("#live .live-text")).to_have_text("Key rejected")
    expect(page.locator("#key-error")).to_have_text(
        "The API rejected that key: it is wrong or was revoked.")
    page.click("#key-cancel")
    expect(page.locator("#overview .loading")).to_contain_text("rejected the API key")
    expect(page.locator("#status-banner")).to_contain_text("rejected the API key")
    browse.shot("key-rejected")
    assert all("401" in e for e in browse.errors), browse.errors
