"""Helpers of the CLI tests (imported by name; conftest.py holds only the fixtures): a
CliRunner bound to a fresh key prefix on the real Redis, and direct broker access for
setting up states the CLI cannot reach (e.g. a dead job).

Every key under the prefix is deleted after each test.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from click.testing import CliRunner, Result

from conveyor.brokers.base import Broker, FailItem
from conveyor.brokers.redis import RedisBroker
from conveyor.cli.main import cli
from conveyor.client import AsyncConveyor, JobRequest
from tests.support.env import REDIS_URL

T = TypeVar("T")


def clean_env() -> dict[str, str | None]:
    """Unset any CONVEYOR_* variable of the outer shell, so only the test's options count."""
    return {key: None for key in os.environ if key.startswith("CONVEYOR_")}


@dataclass
class Cli:
    prefix: str
    runner: CliRunner

    def __call__(
        self, *args: str, input: str | None = None, env: Mapping[str, str | None] | None = None
    ) -> Result:
        return self.runner.invoke(
            cli, ["--broker-url", REDIS_URL, "--key-prefix", self.prefix, *args],
            input=input, env={**clean_env(), **(env or {})},
        )

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--json", *args).stdout)

    def broker(self, action: Callable[[Broker], Awaitable[T]]) -> T:
        """Run `action` against a broker of this prefix (sync tests: the CLI owns the loop)."""

        async def main() -> T:
            broker = RedisBroker.from_url(REDIS_URL, key_prefix=self.prefix)
            try:
                await broker.connect()
                return await action(broker)
            finally:
                await broker.close()

        return asyncio.run(main())

    def make_dead(self, count: int, queue: str = "default") -> list[str]:
        """Enqueue `count` fake jobs, fetch them and fail them without retry: DEAD."""

        async def action(broker: Broker) -> list[str]:
            client = AsyncConveyor(broker)
            await client.enqueue_many([JobRequest("fake", {}, queue)] * count)
            batch = await broker.fetch(queue, count, "cvt-worker", 30_000)
            assert len(batch.deliveries) == count
            states = await broker.fail([
                FailItem(d.job_id, d.token, "handler_error", "boom", retry_delay_ms=None)
                for d in batch.deliveries
            ])
            assert all(s == "dead" for s in states)
            return [d.job_id for d in batch.deliveries]

        return self.broker(action)
