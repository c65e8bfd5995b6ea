"""Redis out of memory (issue 11, item 7): with `maxmemory` reached and `noeviction`, Redis
refuses writes. Enqueue, pause and resume answered 500 `internal_error` and the CLI printed a
traceback; now it is `broker_full`: 503 with Retry-After at the API, one clear line and exit
code 1 in the CLI, and everything works again once memory is freed.
"""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from conveyor.cli.main import cli
from conveyor.settings import Settings
from conveyor.web import create_app
from tests.ops.ops_support import StartServer
from tests.support.asgi import error_of, serve
from tests.support.redis_server import RedisServer

PREFIX = "cvt-full"


async def _fill(admin: Redis) -> None:
    """Store 600 KB, then lower maxmemory well under what is used: full, and stays full
    while clients come and go (a big write refused for its own size would leave room for
    small ones)."""
    for i in range(6):
        await admin.set(f"filler:{i}", "x" * 100_000)
    used = int((await admin.info("memory"))["used_memory"])
    await admin.config_set("maxmemory", str(used - 300_000))
    with pytest.raises(OutOfMemoryError):
        await admin.set("probe", "1")


async def _free(admin: Redis) -> None:
    await admin.delete(*[f"filler:{i}" for i in range(6)])


def _cli(server: RedisServer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["--broker-url", server.url, "--key-prefix", PREFIX, *args], env={})
    return result.exit_code, result.stdout, result.stderr


async def test_a_full_redis_is_broker_full_at_the_api_and_in_the_cli(
    redis_servers: StartServer,
) -> None:
    server = await redis_servers("--maxmemory", "8mb")
    settings = Settings(broker_url=server.url, key_prefix=PREFIX)
    async with serve(create_app(settings=settings)) as http:
        assert (await http.post("/v1/jobs", json={"type": "fake"})).status_code == 201
        admin = Redis.from_url(server.url, decode_responses=True)
        try:
            await _fill(admin)
            refused = [
                await http.post("/v1/jobs", json={"type": "fake"}),
                await http.post("/v1/jobs/batch", json={"jobs": [{"type": "fake"}] * 3}),
                await http.post("/v1/queues/default/pause"),
                await http.post("/v1/queues/default/resume"),
            ]
            for response in refused:
                assert response.status_code == 503, response.text
                assert error_of(response)["code"] == "broker_full"
                assert "out of memory" in error_of(response)["message"]
                assert response.headers["Retry-After"]
            listed = await http.get("/v1/queues")  # reads still work
            assert listed.status_code == 200
            assert listed.json()["items"][0]["counts"]["queued"] == 1

            code, out, err = await asyncio.to_thread(_cli, server, "enqueue", "fake")
            assert code == 1 and out == ""
            assert err.startswith("error: broker_full: Redis is out of memory"), err
            # one error line, then the line naming the broker every command prints
            lines = err.strip().splitlines()
            assert "Traceback" not in err and len(lines) == 2, err
            assert lines[1].startswith("broker: redis://"), err
            code, _, err = await asyncio.to_thread(_cli, server, "queue", "pause", "default")
            assert code == 1 and err.startswith("error: broker_full: ")
        finally:
            await _free(admin)
            await admin.aclose()
        assert (await http.post("/v1/jobs", json={"type": "fake"})).status_code == 201
        assert (await http.post("/v1/queues/default/pause")).status_code == 200
        code, out, _ = await asyncio.to_thread(_cli, server, "enqueue", "fake")
        assert code == 0 and "default:" in out
