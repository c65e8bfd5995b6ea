"""Outside input validated by a regex is matched whole: a trailing newline (which `$` lets
through under `re.match`) is refused like any other bad character, by the API (422) and by
the dashboard's filters (the fragment's clear message, nothing looked up)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.asgi import error_of

UID = "0" * 32


@pytest.mark.parametrize(("url", "what"), [
    ("/ui/f/queues/default%0A", "is not a valid queue name"),
    ("/ui/f/queues/default?type=fake%0A", "is not a valid job type"),
    (f"/ui/f/jobs/default:{UID}%0A", "is not a job id"),
    ("/ui/f/dlq?queue=default%0A", "is not a valid queue name"),
    ("/ui/f/dlq?type=fake%0A", "is not a valid job type"),
    ("/ui/f/dlq?error_code=handler_error%0A", "is not a valid error code"),
])
async def test_dashboard_filters_refuse_a_trailing_newline(
    api: httpx.AsyncClient, url: str, what: str
) -> None:
    r = await api.get(url)
    assert r.status_code == 200, r.text  # the page swaps in only successful answers
    assert what in r.text, r.text


async def test_a_trailing_newline_in_a_search_is_a_plain_search(api: httpx.AsyncClient) -> None:
    r = await api.get(f"/ui/f/queues/default?q={UID}%0A")
    assert r.status_code == 200
    assert "no job has this id" in r.text


@pytest.mark.parametrize("url", [
    "/v1/queues/default%0A/pause",
    f"/v1/jobs/default:{UID}%0A/retry",
])
async def test_api_paths_refuse_a_trailing_newline(api: httpx.AsyncClient, url: str) -> None:
    r = await api.post(url)
    assert r.status_code == 422, r.text
    assert error_of(r)["code"] == "validation_error"


@pytest.mark.parametrize("query", ["queue=default%0A", "type=fake%0A"])
async def test_api_filters_refuse_a_trailing_newline(api: httpx.AsyncClient, query: str) -> None:
    for path in ("/v1/jobs", "/v1/dlq"):
        r = await api.get(f"{path}?{query}")
        assert r.status_code == 422, (path, r.text)
    r = await api.get("/v1/dlq?error_code=x%0A")
    assert r.status_code == 422


async def test_idempotency_key_header_refuses_a_trailing_newline(
    enqueue_api: httpx.AsyncClient,
) -> None:
    r = await enqueue_api.post("/v1/jobs", json={"type": "fake", "idempotency_key": "k1\n"})
    assert r.status_code == 422, r.text
