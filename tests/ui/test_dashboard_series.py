"""The overview's charts come from the broker's per-minute series (issue 18): jobs that
finished before the page was opened are on the chart at once, for every viewer."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.waits import wait_until_sync
from tests.ui.ui_support import Browse, StartApi, StartWorker

pytestmark = pytest.mark.e2e

QUEUE = "ui-series"


def test_the_charts_show_history_from_before_the_page_was_opened(
    services: tuple[StartApi, StartWorker], browse: Browse
) -> None:
    start_api, start_worker = services
    api = start_api()
    start_worker(api, queues=QUEUE)
    ids = [api.enqueue("fake", {"result": n}, queue=QUEUE)["id"] for n in range(8)]

    def all_done() -> bool:
        return all((api.job(i) or {}).get("state") == "succeeded" for i in ids)

    wait_until_sync(all_done, "the jobs to succeed")
    worker_free = api.http.get(f"/v1/queues/{QUEUE}/series", params={"minutes": 2}).json()
    assert sum(p["succeeded"] for p in worker_free["points"]) == 8

    page = browse.page
    page.goto(api.base_url + "/ui/")  # opened after the jobs finished
    expect(page.locator("#chart-throughput rect.bar-succeeded").first).to_be_attached()
    # the note under the charts and both charts' headings say where the numbers come from
    for source in page.locator("[data-chart-source]").all():
        expect(source).to_be_visible()
    for fallback in page.locator("[data-chart-fallback]").all():
        expect(fallback).to_be_hidden()
    expect(page.locator("[data-chart-source]")).to_have_count(3)
    expect(page.locator('[data-stat="failure"]')).to_have_text("0.0 %")
    browse.shot("overview-series")
