"""The Schedules page in a real browser against a real `conveyor api` and `conveyor worker`
(issue 15): a schedule's spec in words, zone, next runs, last run and its state, counts and
paused state; pause, resume, run now and delete through `/v1`; a job links to its schedule.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.waits import wait_until_sync
from tests.ui.ui_support import Browse, StartApi, StartWorker

pytestmark = pytest.mark.e2e

QUEUE = "ui-sched"


def test_schedules_page_shows_and_operates_schedules(
    services: tuple[StartApi, StartWorker], browse: Browse,
) -> None:
    start_api, start_worker = services
    api = start_api()
    r = api.http.put("/v1/schedules/nightly", json={
        "cron": "30 2 * * *", "timezone": "America/New_York",
        "job": {"type": "fake", "queue": QUEUE, "payload": {"result": 1}}})
    assert r.status_code == 201, r.text
    r = api.http.put("/v1/schedules/every2", json={
        "every_s": 2, "job": {"type": "fake", "queue": QUEUE}})
    assert r.status_code == 201, r.text
    start_worker(api, queues=QUEUE)
    page = browse.page

    page.goto(api.base_url + "/ui/schedules")
    expect(page.locator("#live .live-text")).to_have_text("Live")
    nightly = page.locator('tr[data-schedule-row="nightly"]')
    expect(nightly).to_contain_text("America/New_York")
    expect(nightly).to_contain_text("30 2 * * *")
    expect(nightly.locator("[data-next-runs] time")).to_have_count(3)
    expect(nightly.locator("[data-last-run]")).to_contain_text("never")
    every2 = page.locator('tr[data-schedule-row="every2"]')
    # the worker fires its ticks: a last run appears, and it succeeds
    expect(every2.locator("[data-last-run] .badge")).to_have_text("succeeded", timeout=15_000)
    assert int(every2.locator('[data-count="fired"]').inner_text()) >= 1
    browse.shot("schedules")

    # pause and resume, through /v1
    nightly.locator('[data-action="schedule-pause"]').click()
    expect(nightly.locator("[data-paused]")).to_have_text("paused")
    assert api.http.get("/v1/schedules/nightly").json()["paused"] is True
    expect(nightly.locator("[data-next-runs]")).to_contain_text("—")
    nightly.locator('[data-action="schedule-resume"]').click()
    expect(nightly.locator("[data-paused]")).to_have_count(0)
    assert api.http.get("/v1/schedules/nightly").json()["paused"] is False

    # run now: a manual trigger, whose job links back to the schedule
    nightly.locator('[data-action="schedule-trigger"]').click()
    expect(nightly.locator("[data-last-run]")).to_contain_text("manual trigger")
    job_id = api.http.get("/v1/schedules/nightly").json()["last_run"]["job_id"]
    nightly.locator("[data-last-run] a.job-link").click()
    expect(page.locator("#job-id")).to_have_text(job_id)
    expect(page.locator("#job-schedule")).to_have_text("nightly")
    browse.shot("job-of-a-schedule")
    page.click("#job-schedule")
    expect(page.locator('tr[data-schedule-row="nightly"]')).to_be_visible()

    # delete (confirmed)
    page.locator('tr[data-schedule-row="every2"] [data-action="schedule-delete"]').click()
    expect(page.locator("#confirm-dialog")).to_contain_text("every2")
    page.click("#confirm-ok")
    expect(page.locator('tr[data-schedule-row="every2"]')).to_have_count(0)
    assert wait_until_sync(lambda: api.http.get("/v1/schedules/every2").status_code == 404,
                      "the schedule to be gone")
    assert browse.errors == []
