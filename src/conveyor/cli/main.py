"""The `conveyor` click group, its global options and the console-script entry point.

Errors are turned into output in one place: `ConveyorGroup.invoke` prints a `ConveyorError` as
`error: <code>: <message>` on stderr and exits 2 for a bad request, 1 for anything else.
"""

from __future__ import annotations

from typing import Any

import click

from conveyor.cli.api import api
from conveyor.cli.dev import dev
from conveyor.cli.dlq import dlq
from conveyor.cli.jobs import enqueue, job
from conveyor.cli.ops import queue, stats, workers
from conveyor.cli.runtime import CliState, report_error
from conveyor.cli.seed import seed
from conveyor.cli.worker import worker
from conveyor.errors import ConveyorError
from conveyor.logging import configure_logging


class ConveyorGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            report_error(exc)


@click.group(cls=ConveyorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--broker-url", metavar="URL",
              help="Broker to use, e.g. redis://127.0.0.1:6379/0 [env CONVEYOR_BROKER_URL].")
@click.option("--key-prefix", metavar="PREFIX",
              help="Prefix of every broker key [env CONVEYOR_KEY_PREFIX; default cv].")
@click.option("--json", "json_", is_flag=True, help="Print JSON instead of tables.")
@click.version_option(package_name="conveyor", prog_name="conveyor")
@click.pass_context
def cli(ctx: click.Context, broker_url: str | None, key_prefix: str | None, json_: bool) -> None:
    """Conveyor: a distributed job scheduler. Enqueue and inspect jobs, run workers."""
    ctx.obj = CliState(broker_url=broker_url, key_prefix=key_prefix, json=json_)


for command in (worker, enqueue, job, dlq, stats, workers, queue, seed):
    cli.add_command(command)
cli.add_command(api)
cli.add_command(dev)


def main() -> None:
    # Start-up warnings such as "AOF is off" belong to the long-running services; a command
    # line shows errors only. `conveyor worker` replaces this with the configured logging.
    configure_logging("ERROR", "text")
    cli(prog_name="conveyor")
