"""The dashboard's Webhooks page and warning in a real browser (Debian's Chromium through
Playwright) against a real `conveyor api` and `conveyor worker` on the real Redis: the
subscriptions without their secrets, the warning while no live worker serves the webhook
queue (gone once one does), and delete through `DELETE /v1/webhooks/{id}`."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.waits import wait_until_sync
from tests.ui.ui_support import Browse, StartApi, StartWorker

pytestmark = pytest.mark.e2e

URL = "https://1.1.1.1/hooks/<b>conveyor</b>"


def test_webhooks_page_lists_warns_and_deletes(
    services: tuple[StartApi, StartWorker], browse: Browse
) -> None:
    start_api, start_worker = services
    api = start_api()
    made = api.http.post("/v1/webhooks", json={"url": URL, "events": ["job.dead"],
                                               "queues": ["mail"]})
    assert made.status_code == 201, made.text
    sub = made.json()
    page = browse.page

    page.goto(f"{api.base_url}/ui/")
    expect(page.locator("#webhooks-unserved")).to_contain_text("no live worker serves queue")
    page.click('nav a[href="/ui/webhooks"]')
    row = page.locator(f'tr[data-webhook-row="{sub["id"]}"]')
    assert sub["url"] == "https://1.1.1.1/hooks/%3Cb%3Econveyor%3C/b%3E"  # as httpx spells it
    expect(row.locator(".webhook-url")).to_have_text(sub["url"])
    expect(row).to_contain_text("job.dead")
    expect(row.locator(".badge")).to_have_text("active")
    assert page.locator("#webhooks-table b").count() == 0
    assert sub["secret"] not in page.content()
    expect(page.locator("#webhooks-unserved")).to_be_visible()
    browse.shot("webhooks-unserved")

    start_worker(api, queues="default,webhooks")
    expect(page.locator("#webhooks-unserved")).to_have_count(0, timeout=15_000)
    browse.shot("webhooks-served")

    row.locator('[data-action="delete-webhook"]').click()
    expect(page.locator("#confirm-dialog")).to_contain_text(sub["id"])
    page.click("#confirm-ok")
    expect(row).to_have_count(0)
    assert wait_until_sync(lambda: api.http.get("/v1/webhooks").json()["items"] == [],
                      "the subscription to be deleted")
    expect(page.locator("#webhooks")).to_contain_text("No webhook subscriptions")
    assert browse.errors == []
