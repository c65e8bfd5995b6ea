"""Fixtures of the fault suite: scenario size, the ledger, worker processes, test-owned
redis-servers and proxies, and the figures each scenario prints.

Every scenario runs at two sizes through the `scale` fixture: `short` (unmarked: part of
`bash scripts/test`, seconds each) and `long` (marked `chaos`: the figures of
docs/reliability.md). Long runs are skipped unless asked for: `-m chaos`, or `--chaos-long`
(an option only when pytest is given tests/chaos, since a sub-directory's conftest cannot
add options otherwise), or CHAOS_LONG=1. `--chaos-figures PATH` / CHAOS_FIGURES=PATH appends
the figures as JSON lines.

Teardown stops every worker (SIGTERM, SIGKILL past a bounded wait), then every redis-server
and proxy, then deletes the test's keys on the shared Redis.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path

import pytest

from conveyor.brokers.redis import RedisBroker
from conveyor.client import AsyncConveyor
from tests.chaos.chaos_support import Figures, Scale, Workers, WorkerSpec
from tests.chaos.ledger import Ledger
from tests.chaos.proxy import ChaosProxy
from tests.support.env import REDIS_URL
from tests.support.keys import delete_prefix
from tests.support.redis_server import RedisServer, StartRedis, redis_server_binary

LONG_TIMEOUT_S = 900


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "fault suite (tests/chaos)")
    group.addoption("--chaos-long", action="store_true", default=False,
                    help="also run the long chaos scenarios (as -m chaos does)")
    group.addoption("--chaos-figures", default=None, metavar="PATH",
                    help="append each chaos scenario's figures (JSON lines) to PATH")


def _long_wanted(config: pytest.Config) -> bool:
    markexpr = str(config.getoption("markexpr", "") or "")
    selected = "chaos" in markexpr and "not chaos" not in markexpr
    flag = config.getoption("--chaos-long", default=False)
    return bool(flag) or os.environ.get("CHAOS_LONG") == "1" or selected


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _long_wanted(config):
        return
    skip = pytest.mark.skip(reason="long chaos scenario: run with -m chaos or --chaos-long")
    for item in items:
        if item.get_closest_marker("chaos") is not None and "tests/chaos" in str(item.path):
            item.add_marker(skip)


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember a failed set-up or call, so teardown prints the worker logs only then."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(params=[
    pytest.param(Scale(False), id="short"),
    pytest.param(Scale(True), id="long",
                 marks=[pytest.mark.chaos, pytest.mark.timeout(LONG_TIMEOUT_S)]),
])
def scale(request: pytest.FixtureRequest) -> Scale:
    value: Scale = request.param
    return value


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    path = request.config.getoption("--chaos-figures", default=None) or os.environ.get(
        "CHAOS_FIGURES"
    )
    return Figures(Path(path) if path else None)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(tmp_path / "ledger.sqlite3")
    try:
        yield led
    finally:
        led.close()


@pytest.fixture
async def main_broker(prefix: str) -> AsyncIterator[RedisBroker]:
    """The shared Redis, confined to this test's key prefix (deleted at teardown)."""
    broker = RedisBroker.from_url(REDIS_URL, key_prefix=prefix)
    await broker.connect()
    try:
        yield broker
    finally:
        try:
            await delete_prefix(prefix)
        finally:
            await broker.close()


@pytest.fixture
def client(main_broker: RedisBroker) -> AsyncConveyor:
    """Untyped: the chaos job types live in the workers' app, not in this process."""
    return AsyncConveyor(main_broker, validate_types=False)


@pytest.fixture
async def redis_servers(tmp_path: Path) -> AsyncIterator[StartRedis]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    started: list[RedisServer] = []

    async def start(name: str, args: tuple[str, ...]) -> RedisServer:
        server = RedisServer(tmp_path / name, args)
        started.append(server)
        await server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def proxies() -> Iterator[Callable[[str, int], ChaosProxy]]:
    started: list[ChaosProxy] = []

    def start(host: str, port: int) -> ChaosProxy:
        proxy = ChaosProxy(host, port).start()
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.close()


@pytest.fixture
async def workers(
    request: pytest.FixtureRequest, tmp_path: Path, main_broker: RedisBroker,
    redis_servers: StartRedis, proxies: Callable[[str, int], ChaosProxy],
) -> AsyncIterator[Workers]:
    """Depends on the brokers, servers and proxies so it is torn down before them."""
    del main_broker, redis_servers, proxies
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    pool = Workers(log_dir)
    try:
        yield pool
    finally:
        await pool.stop_all()
        if request.node.stash.get(_FAILED, False):
            print(pool.dump_logs())


@pytest.fixture
def spec(prefix: str, ledger: Ledger) -> WorkerSpec:
    """A worker on the shared Redis under this test's prefix, writing to this ledger."""
    return WorkerSpec(broker_url=REDIS_URL, prefix=prefix, ledger=ledger.path)
