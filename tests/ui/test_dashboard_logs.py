"""The job page's Logs card in a real browser (Debian's Chromium through Playwright) against
a real `conveyor api` and `conveyor worker` on the real Redis: the lines a handler wrote
through `ctx.logger`, oldest first with level and attempt, shown as text (never as HTML)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.support.waits import wait_until_sync
from tests.ui.ui_support import Api, Browse, StartApi, StartWorker

pytestmark = pytest.mark.e2e

SCRIPT = '<img src=x onerror="window.__pwned=1">'


def succeeded(api: Api, job_id: str) -> Callable[[], bool]:
    return lambda: (api.job(job_id) or {}).get("state") == "succeeded"


def test_the_job_page_shows_the_job_s_log_lines(
    services: tuple[StartApi, StartWorker], browse: Browse
) -> None:
    start_api, start_worker = services
    api = start_api()
    lines = ["starting the report", "warn: 3 rows skipped", SCRIPT, "done"]
    quiet = api.enqueue("ui.gate", {"gate": "/nonexistent/gate"}, queue="logs")
    job = api.enqueue("ui.chatty", {"lines": lines}, queue="logs")
    start_worker(api, queues="logs")
    for j in (job, quiet):
        wait_until_sync(succeeded(api, j["id"]), f"job {j['id']} to succeed")
    logs = api.http.get(f"/v1/jobs/{job['id']}/logs").json()["lines"]
    assert [line["message"] for line in logs] == lines

    page = browse.page
    page.goto(f"{api.base_url}/ui/jobs/{job['id']}")
    items = page.locator("#job-logs li")
    expect(items).to_have_count(len(lines))
    for i, text in enumerate(lines):
        expect(items.nth(i).locator(".log-message")).to_have_text(text)
    expect(items.nth(1).locator(".log-level")).to_have_text("WARNING")
    expect(items.nth(0).locator(".log-attempt")).to_have_text("#1")
    assert page.locator("#job-logs img, #job-logs script").count() == 0
    assert page.evaluate("window.__pwned") is None
    browse.shot("job-logs")

    page.goto(f"{api.base_url}/ui/jobs/{quiet['id']}")
    expect(page.locator("#job-logs-empty")).to_be_visible()
    assert browse.errors == []
