"""The API reference pages in a real browser with the network cut off: everything but the
`conveyor api` under test is aborted, so Swagger UI (`/docs`) and Redoc (`/redoc`) must render
every operation from the files the package serves itself, under their CSP, with no console
error. Screenshots are saved as artefacts (see `conftest.browse`).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Route, expect

from tests.ui.ui_support import Api, Browse, StartApi, StartWorker

pytestmark = pytest.mark.e2e

REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def offline(page: Page, api: Api) -> list[str]:
    """Abort every request that is not for the API under test; return the aborted URLs."""
    refused: list[str] = []

    def handle(route: Route) -> None:
        url = route.request.url
        if url.startswith(api.base_url + "/") or url.startswith("data:"):
            route.continue_()
        else:
            refused.append(url)
            route.abort("internetdisconnected")

    page.route("**/*", handle)
    return refused


def viewport_shot(browse: Browse, name: str) -> None:
    path = browse.folder / f"{browse.test_name}-{len(browse.shots) + 1:02d}-{name}.png"
    browse.page.screenshot(path=str(path))
    browse.shots.append(path)


def operations(api: Api) -> list[tuple[str, str, dict[str, str]]]:
    doc = api.http.get("/openapi.json").json()
    return [(method, path, op) for path, item in doc["paths"].items()
            for method, op in item.items()]


@pytest.fixture
def api(services: tuple[StartApi, StartWorker]) -> Api:
    start_api, _ = services
    return start_api(keys="docs-key")  # the pages need no key; the document is public


def test_swagger_ui_renders_every_operation_offline(api: Api, browse: Browse) -> None:
    page = browse.page
    refused = offline(page, api)
    ops = operations(api)
    res = page.goto(api.base_url + "/docs")
    assert res is not None and res.status == 200
    assert "script-src 'self'" in res.headers["content-security-policy"]

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Conveyor")
    blocks = page.locator(".opblock")
    expect(blocks).to_have_count(len(ops))
    for method, path, op in ops:
        block = page.locator(f".opblock-{method}", has=page.locator(
            f'.opblock-summary-path[data-path="{path}"]'))
        expect(block).to_have_count(1)
        expect(block.locator(".opblock-summary-operation-id")).to_have_text(op["operationId"])
    expect(page.locator(".btn.authorize")).to_be_visible()  # the bearer scheme is declared
    browse.shot("swagger-ui")

    # One operation opened: its parameters and documented responses render too.
    page.locator(".opblock-summary-path[data-path='/v1/jobs/{id}']").first.click()
    opened = page.locator(".opblock.is-open")
    expect(opened.locator(".parameters-container")).to_contain_text("id")
    for status in ("200", "401", "404", "422", "503"):
        expect(opened.locator(f'tr.response[data-code="{status}"]')).to_have_count(1)
    browse.shot("swagger-ui-get-job")

    assert refused == [], f"the page tried to reach the network: {refused}"
    assert browse.errors == [], browse.errors


def test_redoc_renders_every_operation_offline(api: Api, browse: Browse) -> None:
    page = browse.page
    refused = offline(page, api)
    ops = operations(api)
    res = page.goto(api.base_url + "/redoc")
    assert res is not None and res.status == 200

    expect(page.locator("h1")).to_contain_text("Conveyor")
    for _, _, op in ops:
        section = page.locator(f'[id="operation/{op["operationId"]}"]')
        expect(section).to_have_count(1)
        expect(section.locator("h2")).to_have_text(op["summary"])
    expect(page.get_by_role("textbox", name="Search")).to_be_visible()
    viewport_shot(browse, "redoc")  # the whole page is ~20,000 px tall
    page.locator(f'[id="operation/{ops[0][2]["operationId"]}"]').scroll_into_view_if_needed()
    viewport_shot(browse, "redoc-first-operation")

    assert refused == [], f"the page tried to reach the network: {refused}"
    # Redoc's sidebar footer shows Redocly's logo from its CDN: the CSP blocks it (the one
    # console error allowed, and proof the policy holds); the image hides itself on error.
    errors = [e for e in browse.errors if not (
        REDOCLY_LOGO in e and "violates the following Content Security Policy" in e)]
    assert errors == [], errors
