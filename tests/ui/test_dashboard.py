"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real
`conveyor api` and `conveyor worker` on the real Redis: it follows jobs live, operates on
them through `/v1`, shows untrusted payloads as text, and asks for the API key when one is
needed. Every page is saved as a screenshot (see `conftest.browse`).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.waits import wait_until_sync
from tests.ui.ui_support import Browse, StartApi, StartWorker

pytestmark = pytest.mark.e2e

QUEUE = "ui"


def row(job_id: str) -> str:
    return f'tr[data-job-row="{job_id}"]'


def test_a_dead_job_is_purged_or_redriven_from_the_dlq_page_and_then_succeeds(
    services: tuple[StartApi, StartWorker], browse: Browse, tmp_path: Path
) -> None:
    start_api, start_worker = services
    api = start_api()
    worker = start_worker(api, queues=QUEUE)
    page = browse.page

    page.goto(api.base_url + "/ui/")
    expect(page.locator("#live .live-text")).to_have_text("Live")
    expect(page.locator("#overview")).to_contain_text("No queues yet")

    gate = tmp_path / "gate-closed"
    gate.touch()
    doomed = api.enqueue("ui.gate", {"gate": str(gate)}, queue=QUEUE)["id"]
    purged = api.enqueue("ui.gate", {"gate": str(gate)}, queue=QUEUE)["id"]
    for n in range(12):
        api.enqueue("fake", {"duration_ms": 20, "result": n}, queue=QUEUE)

    # The overview follows without a reload: the new queue, its dead and succeeded jobs (a
    # queue new to the page shows once the counts, sampled every 5 s, list it; then events).
    queue_row = page.locator(f'#queues-table tr[data-queue-row="{QUEUE}"]')
    expect(queue_row.locator("a.count-dead")).to_have_text("2", timeout=15_000)
    expect(queue_row.locator("a.count-succeeded")).to_have_text("12")
    expect(queue_row.locator(".badge")).to_have_text("active")
    expect(page.locator('[data-stat="rate"]')).not_to_have_text("—")
    expect(page.locator("#chart-throughput rect.bar-succeeded").first).to_be_attached()
    expect(page.locator("[data-dead-total]")).to_have_text("2")
    browse.shot("overview")

    page.click('nav a[href="/ui/dlq"]')
    expect(page.locator("#dlq-table tbody tr")).to_have_count(2)
    expect(page.locator("#dlq-list")).to_contain_text("permanent_failure")
    browse.shot("dlq")

    # "All matching" needs a filter; its preview counts every match and cancelling keeps all.
    expect(page.locator('[data-action="purge-matching"]')).to_be_disabled()
    page.click(f'.chip[data-set="queue"][data-value="{QUEUE}"]')
    expect(page.locator('#filters select[name="queue"]')).to_have_value(QUEUE)
    assert f"queue={QUEUE}" in page.url
    page.click('[data-action="purge-matching"]')
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("2 dead jobs would be deleted")
    page.click("#confirm-cancel")
    expect(dialog).to_be_hidden()
    expect(page.locator("#dlq-table tbody tr")).to_have_count(2)

    # Purge one: a dry-run preview first, then the confirmation does it.
    page.locator(f"{row(purged)} input[data-select]").check()
    expect(page.locator("#selected-count")).to_have_text("1 selected")
    page.click('[data-action="purge-selected"]')
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("1 dead job would be deleted")
    expect(dialog).to_contain_text(purged)
    browse.shot("dlq-purge-preview")
    assert api.job(purged) is not None, "the preview must change nothing"
    page.click("#confirm-ok")
    expect(page.locator(row(purged))).to_have_count(0)
    assert api.job(purged) is None
    expect(page.locator("#selected-count")).to_have_text("No job selected")

    # The cause is fixed: redrive the other from the page and watch it succeed.
    gate.unlink()
    page.locator(f"{row(doomed)} input[data-select]").check()
    page.click('[data-action="redrive-selected"]')
    expect(dialog).to_contain_text("1 dead job would go back to its queue")
    page.click("#confirm-ok")
    expect(page.locator(".toast").last).to_contain_text("Redrove 1 job")
    expect(page.locator("#dlq-list")).to_contain_text("Nothing here")

    page.goto(f"{api.base_url}/ui/jobs/{doomed}")
    expect(page.locator(".job-title .badge")).to_have_text("succeeded")
    expect(page.locator("#job-history .event-head .badge")).to_have_text(
        ["dead", "redriven", "succeeded"])
    expect(page.locator("#job-result")).to_contain_text('"passed": true')
    page.locator("#job-history details.traceback summary").first.click()
    expect(page.locator("#job-history details.traceback pre").first).to_contain_text(
        "gate closed")
    browse.shot("job")
    done = api.job(doomed)
    assert done is not None and done["state"] == "succeeded"

    # The queue page: jobs by state, filtered by type, searched by id.
    page.click(f'.crumbs a[href="/ui/queues/{QUEUE}"]')
    expect(page.locator(".tab.active")).to_contain_text("All 13")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(13)
    page.fill('#filters input[name="type"]', "ui.gate")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    page.fill('#filters input[name="type"]', "")
    page.click('.tab[data-value="succeeded"]')
    expect(page.locator("#jobs-table tbody tr")).to_have_count(13)
    assert "state=succeeded" in page.url
    page.fill('#filters input[name="q"]', doomed.split(":")[1][-10:])
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    expect(page.locator(row(doomed))).to_be_visible()
    page.fill('#filters input[name="q"]', "")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(13)
    browse.shot("queue")

    page.click('nav a[href="/ui/workers"]')
    worker_row = page.locator("#workers-table tbody tr")
    expect(worker_row).to_have_count(1)
    expect(worker_row).to_contain_text(socket.gethostname())
    expect(worker_row).to_contain_text(str(worker.proc.pid))
    expect(worker_row).to_contain_text(QUEUE)
    expect(worker_row).to_contain_text("0 / 4")
    browse.shot("workers")

    assert browse.errors == []


SCRIPT = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def test_untrusted_payloads_show_as_text_and_actions_go_through_the_api(
    services: tuple[StartApi, StartWorker], browse: Browse
) -> None:
    start_api, _ = services
    api = start_api()  # no worker: the job stays queued
    job = api.enqueue("fake", {"result": SCRIPT}, queue="held", priority=5)
    page = browse.page

    page.goto(f"{api.base_url}/ui/jobs/{job['id']}")
    payload = page.locator("#job-payload")
    expect(payload).to_contain_text(SCRIPT.replace('"', '\\"'))
    assert payload.locator("script, img").count() == 0
    assert page.locator("#job script, #job img").count() == 0
    assert page.evaluate("window.__pwned") is None
    expect(page.locator(".job-title .badge")).to_have_text("queued")
    browse.shot("job-untrusted-payload")

    # Cancel (confirmed), then retry, from the job page; each through /v1.
    page.click('[data-action="cancel"]')
    expect(page.locator("#confirm-dialog")).to_contain_text(job["id"])
    page.click("#confirm-ok")
    expect(page.locator(".job-title .badge")).to_have_text("cancelled")
    assert (api.job(job["id"]) or {})["state"] == "cancelled"
    page.click('[data-action="retry"]')
    expect(page.locator(".job-title .badge")).to_have_text("queued")
    assert (api.job(job["id"]) or {})["state"] == "queued"

    # 54 newer jobs push it to the queue page's second page.
    res = api.http.post("/v1/jobs/batch", json={
        "jobs": [{"type": "fake", "payload": {"result": n}, "queue": "held"} for n in range(54)]})
    assert res.status_code == 201, res.text
    page.click('.crumbs a[href="/ui/queues/held"]')
    expect(page.locator(".tab.active")).to_contain_text("All 55")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(50)
    page.click('[data-set="cursor"]:has-text("Older")')
    expect(page.locator("#jobs-table tbody tr")).to_have_count(5)
    expect(page.locator(row(job["id"]))).to_be_visible()
    assert page.locator("#queue-jobs script, #queue-jobs img").count() == 0
    page.click('[data-set="cursor"]:has-text("Newest")')
    expect(page.locator("#jobs-table tbody tr")).to_have_count(50)

    # Pause and resume the queue from the overview.
    page.click('nav a[href="/ui/"]')
    held = page.locator('#queues-table tr[data-queue-row="held"]')
    held.locator('[data-action="pause"]').click()
    expect(held.locator(".badge")).to_have_text("paused")
    assert wait_until_sync(
        lambda: any(q["paused"] for q in api.http.get("/v1/queues").json()["items"]),
        "the queue to read as paused")
    browse.shot("overview-paused")
    held.locator('[data-action="resume"]').click()
    expect(held.locator(".badge")).to_have_text("active")
    assert page.evaluate("window.__pwned") is None
    assert browse.errors == []


def test_with_api_keys_the_page_asks_for_a_key_and_works_once_given(
    services: tuple[StartApi, StartWorker], browse: Browse
) -> None:
    start_api, _ = services
    api = start_api(keys="ui-key-1,ui-key-2")
    api.enqueue("fake", {}, queue="secured")
    page = browse.page
    assert api.http.get("/ui/f/overview", headers={"Authorization": ""}).status_code == 401
    assert api.http.get("/ui/f/overview").status_code == 200

    page.goto(api.base_url + "/ui/")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#live .live-text")).to_have_text("Key needed")
    expect(page.locator("#overview")).not_to_contain_text("secured")
    browse.shot("key-prompt")

    page.fill("#key-input", "wrong-key")
    page.click("#key-save")
    expect(page.locator("#key-error")).to_have_text(
        "The API rejected that key: check it and try again.")
    assert page.evaluate("sessionStorage.getItem('conveyor.apiKey')") is None

    page.fill("#key-input", "ui-key-2")
    page.click("#key-save")
    expect(page.locator('#queues-table tr[data-queue-row="secured"]')).to_be_visible()
    expect(dialog).to_be_hidden()
    expect(page.locator("#live .live-text")).to_have_text("Live")

    # Kept for the session: another page needs no prompt, and actions carry the key.
    page.click('nav a[href="/ui/workers"]')
    expect(page.locator("#workers")).to_contain_text("No live worker")
    expect(dialog).to_be_hidden()
    page.click('nav a[href="/ui/"]')
    page.locator('tr[data-queue-row="secured"] [data-action="pause"]').click()
    expect(page.locator('tr[data-queue-row="secured"] .badge')).to_have_text("paused")
    # The only console errors are the refused requests before the key was given.
    assert all("401" in e for e in browse.errors), browse.errors
