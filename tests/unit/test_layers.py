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


#: the layers above the broker protocol and the domain modules
ABOVE = ("conveyor.client", "conveyor.api", "conveyor.cli", "conveyor.worker", "conveyor.ui",
         "conveyor.web", "conveyor.devserver")
BACKENDS = ("conveyor.brokers.redis", "conveyor.brokers.sqlite")


@pytest.mark.parametrize(("package", "forbidden"), [
    ("api", ("conveyor.ui", "conveyor.web")),
    ("ui", ("conveyor.api.routes", "conveyor.web")),
    # the brokers know nothing above the protocol; the domain layers name no backend (each
    # backend offers its schedule / webhook store as a capability) and no client
    ("brokers", ABOVE),
    ("schedules", ABOVE + BACKENDS),
    ("dlq", ABOVE + BACKENDS),
    ("events", ABOVE + BACKENDS),
    ("handlers", ABOVE + BACKENDS),
])
def test_no_import_runs_the_wrong_way(package: str, forbidden: tuple[str, ...]) -> None:
    assert _offending(package, forbidden) == {}


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The conveyor modules a file imports when it runs (top level or in a function; not
    under `if TYPE_CHECKING:`)."""
    found: set[str] = set()
    stack: list[ast.AST] = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                if name in modules:
                    found.add(name)
                elif node.module in modules:
                    found.add(node.module)
        stack.extend(ast.iter_child_nodes(node))
    return found


def test_no_import_cycle() -> None:
    """No two conveyor modules import each other, directly or through others (lazy imports
    in functions count: they only hide a cycle)."""
    paths = {}
    for path in SRC.rglob("*.py"):
        parts = ["conveyor", *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        paths[".".join(parts)] = path
    graph = {m: _runtime_imports(p, set(paths)) - {m} for m, p in paths.items()}
    # a cycle is an edge a -> b with a path b -> ... -> a: look for one from every module
    cycles = []
    for start in graph:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            m = todo.pop()
            if m == start:
                cycles.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
    # a package imports its own modules (its __init__ re-exports them): not a cycle of layers
    cycles = [m for m in cycles if not any(
        dep.startswith(m + ".") for dep in graph[m]) or _cycle_outside(graph, m)]
    assert cycles == []


def _cycle_outside(graph: dict[str, set[str]], start: str) -> bool:
    """A path back to `start` that does not go through start's own package re-exports."""
    seen: set[str] = set()
    todo = [d for d in graph[start] if not d.startswith(start + ".")]
    while todo:
        m = todo.pop()
        if m == start:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return False


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
