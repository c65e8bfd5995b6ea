"""The `conveyor` click group, its global options and the console-script entry point.

Errors are turned into output in one place: `ConveyorGroup` prints a `ConveyorError` as
`error: <code>: <message>` on stderr (with --json: `{"error": {...}}`) and exits 2 for a bad
request, 1 for anything else; click's usage errors (exit 2) get the same JSON shape, and an
unexpected exception is one `internal_error` line (exit 1) unless CONVEYOR_DEBUG is set.
No command exits with a code outside 0 (ok), 1 (failure) and 2 (bad usage).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click
from redis.exceptions import RedisError

from conveyor.cli.api import api
from conveyor.cli.dev import dev
from conveyor.cli.dlq import dlq
from conveyor.cli.jobs import enqueue, job
from conveyor.cli.jobs_list import jobs
from conveyor.cli.limits import register as register_limits
from conveyor.cli.ops import queue, stats, workers
from conveyor.cli.output import echo_err_json
from conveyor.cli.runtime import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CliState,
    print_error,
    report_error,
)
from conveyor.cli.schedules import schedule
from conveyor.cli.seed import seed
from conveyor.cli.webhooks import webhook
from conveyor.cli.worker import worker
from conveyor.errors import ConveyorError, ErrorCode
from conveyor.logging import configure_logging

#: click's own control flow, never an error of ours
_CLICK_FLOW = (click.exceptions.Exit, click.exceptions.Abort, click.ClickException)


def _debug() -> bool:
    return os.environ.get("CONVEYOR_DEBUG", "").lower() not in ("", "0", "false", "no")


def _json_asked(ctx: click.Context | None, argv: Sequence[str]) -> bool:
    """--json, even when parsing failed before its callback ran."""
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, CliState) and obj.json:
        return True
    args = list(argv)
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _usage_failure(exc: click.ClickException, argv: Sequence[str]) -> NoReturn:
    ctx = getattr(exc, "ctx", None)
    if _json_asked(ctx, argv):
        param = getattr(exc, "param", None)
        details = {"param": param.name} if isinstance(param, click.Parameter) else None
        code = "usage_error" if isinstance(exc, click.UsageError) else "error"
        echo_err_json({"error": {"code": code, "message": exc.format_message(),
                                 "details": details}})
    else:
        exc.show()
    sys.exit(exc.exit_code)


class ConveyorGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            report_error(exc)
        except (*_CLICK_FLOW, BrokenPipeError):  # click ends a broken pipe quietly
            raise
        except SystemExit as exc:  # e.g. uvicorn's 3 when the application fails to start
            code = exc.code
            if isinstance(code, int) and code not in (EXIT_OK, EXIT_FAILURE, EXIT_USAGE):
                raise SystemExit(EXIT_FAILURE) from None
            raise
        except Exception as exc:
            if _debug():
                raise
            if isinstance(exc, RedisError):  # e.g. "DB index is out of range" at connect
                print_error(ErrorCode.BROKER_MISCONFIGURED, f"Redis answered an error: {exc}")
            else:
                print_error("internal_error", f"unexpected {type(exc).__name__}: {exc}"
                            " (CONVEYOR_DEBUG=1 shows the traceback)")
            raise click.exceptions.Exit(EXIT_FAILURE) from None

    def main(
        self, args: Sequence[str] | None = None, prog_name: str | None = None,
        complete_var: str | None = None, standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        """click's standalone mode, but usage errors go through `_usage_failure` (JSON with
        --json)."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        argv = list(args) if args is not None else sys.argv[1:]
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            _usage_failure(exc, argv)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(EXIT_FAILURE)
        sys.exit(code if isinstance(code, int) else 0)


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


for command in (worker, enqueue, job, jobs, dlq, stats, workers, queue, seed, webhook,
                schedule):
    cli.add_command(command)
register_limits(queue)  # `queue limits`, `queue keys` (flow control)
cli.add_command(api)
cli.add_command(dev)


def main() -> None:
    # Start-up warnings such as "AOF is off" belong to the long-running services; a command
    # line shows errors only. `conveyor worker` replaces this with the configured logging.
    configure_logging("ERROR", "text")
    cli(prog_name="conveyor")
