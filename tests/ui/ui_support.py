"""Helpers of the dashboard tests: real `conveyor api` and `conveyor worker` processes on a
free port and a key prefix of their own, bounded polls, and where screenshots go (a plain
module: conftest and the tests import it by name).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, ViewportSize

from tests.support.env import REDIS_URL
from tests.support.processes import ChildProcess, conveyor_env

#: Debian's Chromium; elsewhere (e.g. a CI image with Google Chrome) point this variable at it
CHROMIUM = os.environ.get("CONVEYOR_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: a laptop screen
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
START_TIMEOUT_S = 20.0
APP_MODULE = "ui_gate"

#: The worker's and the API's `--app`: a job type that fails for good while a file exists,
#: so a dead job can be redriven after the cause is "fixed" (the file removed).
GATE_MODULE = '''
"""A handler that fails permanently while the file named in its payload exists, and two that
run until cancelled."""

import asyncio
import time
from pathlib import Path

from conveyor.errors import PermanentError
from conveyor.handlers import JobContext, handler


def check_gate(path: str) -> None:
    if Path(path).exists():
        raise PermanentError("gate closed: " + path)


@handler("ui.gate", max_attempts=3)
def gate(payload: dict) -> dict:
    check_gate(payload["gate"])
    return {"passed": True}


@handler("ui.chatty")
async def chatty(payload: dict, ctx) -> None:
    """Writes each of payload["lines"] through ctx.logger (the job page's Logs card)."""
    for line in payload["lines"]:
        ctx.logger.warning(line) if line.startswith("warn:") else ctx.logger.info(line)


@handler("ui.slow", max_attempts=1)
async def slow(payload: dict) -> dict:
    """Runs until cancelled (or `seconds` pass)."""
    await asyncio.sleep(payload.get("seconds", 120))
    return {"slept": True}


@handler("ui.steps", max_attempts=1)
async def steps(payload: dict, ctx) -> dict:
    """Reports progress "step n of N" once the file step-n exists in payload["dir"], then
    returns once the file done exists (the test moves it along, one step at a time)."""
    folder, total = Path(payload["dir"]), payload["steps"]
    for name in [f"step-{n}" for n in range(1, total + 1)] + ["done"]:
        while not (folder / name).exists():
            await asyncio.sleep(0.05)
        if name != "done":
            n = int(name[5:])
            ctx.progress(n / total, message=f"step {n} of {total}")
            ctx.logger.info(f"reached step {n}")
    return {"steps": total}


@handler("ui.slow_sync", max_attempts=1)
def slow_sync(payload: dict, ctx: JobContext) -> dict:
    """A sync handler that checks ctx.cancelled between steps and returns when asked."""
    deadline = time.monotonic() + payload.get("seconds", 120)
    while time.monotonic() < deadline and not ctx.cancelled:
        time.sleep(0.05)
    return {"stopped": ctx.cancelled}
'''


def spawn(name: str, args: list[str], *, tmp_path: Path, prefix: str,
          env_extra: dict[str, str]) -> ChildProcess:
    app_dir = tmp_path / "app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / f"{APP_MODULE}.py").write_text(GATE_MODULE)
    env = conveyor_env({
        "CONVEYOR_BROKER_URL": REDIS_URL,
        "CONVEYOR_KEY_PREFIX": prefix,
        "CONVEYOR_REAP_INTERVAL_S": "0.2",
        "CONVEYOR_SHUTDOWN_GRACE_S": "2",
        "CONVEYOR_LOG_FORMAT": "json",
        **env_extra,
    }, pythonpath=[app_dir])
    return ChildProcess.launch(name, [*args, "--app", APP_MODULE], env=env, log_dir=tmp_path,
                               merge_output=True)


@dataclass
class Api:
    """A running `conveyor api` and an HTTP client of it (with the key, when one is set)."""

    service: ChildProcess
    base_url: str
    http: httpx.Client

    def enqueue(self, type: str, payload: Any, **fields: Any) -> dict[str, Any]:
        res = self.http.post("/v1/jobs", json={"type": type, "payload": payload, **fields})
        assert res.status_code == 201, res.text
        job: dict[str, Any] = res.json()
        return job

    def job(self, job_id: str) -> dict[str, Any] | None:
        res = self.http.get(f"/v1/jobs/{job_id}")
        if res.status_code == 404:
            return None
        assert res.status_code == 200, res.text
        job: dict[str, Any] = res.json()
        return job

    def counts(self, queue: str) -> dict[str, int]:
        items = self.http.get("/v1/queues").json()["items"]
        found: dict[str, int] = next((q["counts"] for q in items if q["name"] == queue), {})
        return found


@dataclass
class Browse:
    """A page on a laptop-sized viewport, the console errors it logged, and screenshots."""

    page: Page
    folder: Path
    test_name: str
    errors: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        path = self.folder / f"{self.test_name}-{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path


StartApi = Callable[..., Api]
StartWorker = Callable[..., ChildProcess]


def artifacts_dir(fallback: Path) -> Path:
    """`CONVEYOR_TEST_ARTIFACTS/ui` when set (CI keeps it), else a pytest temporary folder."""
    root = os.environ.get("CONVEYOR_TEST_ARTIFACTS")
    folder = Path(root) / "ui" if root else fallback
    folder.mkdir(parents=True, exist_ok=True)
    return folder
