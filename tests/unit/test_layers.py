"""The web's import arrows: `conveyor.web` puts the API and the dashboard together; the API
never imports the dashboard (or the web root), and the dashboard never imports a route
module (the reads both need are in `conveyor.api.queries`)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import httpx
import pytest

import conveyor
from conveyor.api import build_api
from conveyor.settings import Settings
from conveyor.web import create_app

SRC = Path(conveyor.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module a file imports, absolute (`from conveyor.api import routes` names both
    `conveyor.api` and `conveyor.api.routes`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _offending(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad: dict[str, list[str]] = {}
    for path in sorted((SRC / package).rglob("*.py")):
        hits = sorted(m for m in _imports(path)
                      if any(m == f or m.startswith(f + ".") for f in forbidden))
        if hits:
            bad[str(path.relative_to(SRC))] = hits
    return bad


@pytest.mark.parametrize(("package", "forbidden"), [
    ("api", ("conveyor.ui", "conveyor.web")),
    ("ui", ("conveyor.api.routes", "conveyor.web")),
])
def test_no_import_runs_the_wrong_way(package: str, forbidden: tuple[str, ...]) -> None:
    assert _offending(package, forbidden) == {}


def test_the_check_sees_an_import() -> None:
    assert "conveyor.ui.install_ui" in _imports(SRC / "web.py")
    assert _offending("ui", ("conveyor.api.queries",))  # the dashboard does use the queries



async def _status(app: Any, path: str) -> int:
    # no lifespan: nothing here reaches the broker (page shells and docs hold no data)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1") as http:
        return (await http.get(path)).status_code


async def test_the_web_root_adds_the_dashboard_to_the_api() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:6379/0", key_prefix="cvt-layers")
    api, web = build_api(settings=settings).app, create_app(settings=settings)
    assert await _status(web, "/ui/") == 200
    assert await _status(api, "/ui/") == 404
    for app in (api, web):
        assert await _status(app, "/openapi.json") == 200
