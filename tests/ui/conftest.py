"""Fixtures of the dashboard tests: Debian's Chromium driven by Playwright (never a downloaded
browser), real `conveyor api` / `conveyor worker` processes on a key prefix of their own, and
a page that records console errors and saves screenshots as test artefacts.

Teardown: browser context closed, processes stopped (SIGTERM, then SIGKILL after a bounded
wait) and their logs printed (pytest shows them when a test fails), the prefix's keys deleted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, sync_playwright

from tests.support.processes import ChildProcess, free_port
from tests.support.waits import wait_until_sync
from tests.ui.ui_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    START_TIMEOUT_S,
    VIEWPORT,
    Api,
    Browse,
    StartApi,
    StartWorker,
    artifacts_dir,
    spawn,
)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = artifacts_dir(tmp_path_factory.mktemp("ui-artifacts"))
    print(f"dashboard screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped: Playwright's own event loop never outlives these sync tests."""
    if not os.path.exists(CHROMIUM):
        # .ci/run installs it: in CI its absence fails; elsewhere the tests say how to get it.
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browse(browser: Browser, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Browse]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    page = context.new_page()
    view = Browse(page, artifacts, request.node.name)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            view.errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: view.errors.append(f"page error: {exc}"))
    try:
        yield view
    finally:
        context.close()


@pytest.fixture
def services(prefix: str, tmp_path: Path) -> Iterator[tuple[StartApi, StartWorker]]:
    started: list[ChildProcess] = []
    clients: list[httpx.Client] = []

    def start_api(*, keys: str = "") -> Api:
        port = free_port()
        service = spawn("api", ["api", "--port", str(port)], tmp_path=tmp_path, prefix=prefix,
                        env_extra={"CONVEYOR_API_KEYS": keys})
        started.append(service)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {keys.split(',')[0]}"} if keys else {}
        http = httpx.Client(base_url=base, headers=headers, timeout=10.0)
        clients.append(http)

        def ready() -> bool:
            if not service.running():
                raise AssertionError("the API exited before it answered\n" + service.logs())
            try:
                return http.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until_sync(ready, "the API to answer /readyz", START_TIMEOUT_S)
        return Api(service, base, http)

    def start_worker(api: Api, *, queues: str, env: dict[str, str] | None = None) -> ChildProcess:
        service = spawn("worker", ["worker", "--queues", queues, "--concurrency", "4"],
                        tmp_path=tmp_path, prefix=prefix, env_extra=env or {})
        started.append(service)

        def registered() -> bool:
            if not service.running():
                raise AssertionError("the worker exited before registering\n" + service.logs())
            items = api.http.get("/v1/workers").json()["items"]
            return any(w["pid"] == service.proc.pid for w in items)

        wait_until_sync(registered, "the worker to register", START_TIMEOUT_S)
        return service

    try:
        yield start_api, start_worker
    finally:
        for http in clients:
            http.close()
        for service in reversed(started):
            service.stop_sync()
            print(service.logs())
