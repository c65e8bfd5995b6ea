"""The web's import arrows: `conveyor.web` puts the API and the dashboard together; the API
never imports the dashboard (or the web root), and the dashboard never imports a route
module (the reads both need are in `conveyor.api.queries`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import conveyor

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
