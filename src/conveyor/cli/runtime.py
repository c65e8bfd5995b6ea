"""What every command shares: the settings, a client connected for the length of one command
(after saying which broker it is), and the one place where a `ConveyorError` becomes
`error: <code>: <message>` (or, with --json, `{"error": {...}}`) and an exit code.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
import pydantic
from pydantic_settings import SettingsError

from conveyor.cli.broker import BrokerInfo, build_broker, describe, require_existing
from conveyor.cli.output import echo_err_json
from conveyor.client import AsyncConveyor
from conveyor.errors import ConveyorError, PayloadTooLarge, UnknownJobType, ValidationError
from conveyor.handlers import load_app
from conveyor.logging import LOG_FORMATS, configure_logging, get_logger
from conveyor.runloop import run_loop
from conveyor.settings import Settings

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

#: Errors that mean "the request was wrong", not "the system failed": exit like bad usage.
USAGE_ERRORS: tuple[type[ConveyorError], ...] = (ValidationError, UnknownJobType, PayloadTooLarge)

#: Settings fields the command line can set, and the option that sets each.
_OPTION_OF = {
    "broker_url": "--broker-url",
    "key_prefix": "--key-prefix",
    "lease_s": "--lease",
    "concurrency": "--concurrency",
    "log_format": "--log-format",
    "worker_metrics_port": "--metrics-port",
    "worker_metrics_host": "--metrics-host",
}


@dataclass(slots=True)
class CliState:
    """The group's global options, handed to every command as the click context object."""

    broker_url: str | None = None
    key_prefix: str | None = None
    json: bool = False

    def settings(self, **overrides: Any) -> Settings:
        """Environment settings with the command line's values on top (None: not given)."""
        given = {"broker_url": self.broker_url, "key_prefix": self.key_prefix, **overrides}
        try:
            return Settings(**{k: v for k, v in given.items() if v is not None})
        except pydantic.ValidationError as exc:
            raise ValidationError(_settings_message(exc)) from None
        except SettingsError as exc:  # an env value that is not even JSON, e.g. {bad
            raise ValidationError(_unparsable_message(exc)) from None


def _settings_message(exc: pydantic.ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "settings"
        source = f"CONVEYOR_{field.split('.')[0].upper()}"
        option = _OPTION_OF.get(field.split(".")[0])
        where = f"{option} or {source}" if option else source
        problems.append(f"{field} ({where}): {err['msg']}")
    return "invalid settings: " + "; ".join(problems)


def _unparsable_message(exc: SettingsError) -> str:
    match = re.search(r'field "([a-z0-9_]+)"', str(exc))
    field = match.group(1) if match else "settings"
    cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
    return f"invalid settings: {field} (CONVEYOR_{field.upper()}): not valid JSON{cause}"


def state() -> CliState:
    return click.get_current_context().ensure_object(CliState)


def wants_json() -> bool:
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.ensure_object(CliState).json


def notice(kind: str, message: str, **fields: Any) -> None:
    """A `warning:` or `note:` line on stderr; with --json `{"<kind>": {"message", ...}}`."""
    if wants_json():
        echo_err_json({kind: {"message": message, **fields}})
    else:
        click.echo(f"{kind}: {message}", err=True)


def json_flag(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--json` on a command too, so `conveyor stats --json` works like `conveyor --json stats`."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.ensure_object(CliState).json = True
        return value

    return click.option(
        "--json", "json_flag", is_flag=True, expose_value=False, callback=remember,
        help="Print JSON instead of tables.",
    )(func)


def log_format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--log-format", type=click.Choice(LOG_FORMATS),
        help="Log lines: auto (coloured text on a terminal, JSON otherwise), json or text"
        " [env CONVEYOR_LOG_FORMAT; default auto].",
    )(func)


def start_service(settings: Settings, name: str) -> None:
    """For the long-running commands: check the broker URL before anything starts (a bad one
    is a usage error), switch to the configured logs and log which broker this is."""
    build_broker(settings)
    configure_logging(settings.log_level, settings.log_format)
    info = describe(settings)
    get_logger(f"conveyor.{name}").info("broker_selected", extra={
        f"broker_{key}": value for key, value in info.to_dict().items()})


def ensure_cwd_importable() -> None:
    """A console script's sys.path starts at its bin/ folder; `--app` modules live in the cwd."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def load_app_modules(app: str | None) -> None:
    if app:
        ensure_cwd_importable()
        load_app(app)


def announce_broker(info: BrokerInfo) -> None:
    """`broker: <url> (...)` on stderr (a JSON line with --json) as the command's last line,
    after its output or its error, so stdout stays the result and `error:` stays first."""
    as_json = wants_json()

    def say() -> None:
        if as_json:
            echo_err_json({"broker": info.to_dict()})
        else:
            click.echo(info.line(), err=True)

    click.get_current_context().find_root().call_on_close(say)


def run(
    action: Callable[[AsyncConveyor], Awaitable[T]], *, app: str | None = None,
    check: Callable[[AsyncConveyor], object] | None = None, creates: bool = False,
) -> T:
    """Load the app's handlers, say which broker, connect a client, run `action`, and always
    close the client.

    `check` runs before connecting, so a bad request is reported as such even with the broker
    down. Only a command that `creates` jobs may create a SQLite file that is not there yet.
    """
    load_app_modules(app)
    settings = state().settings()
    info = describe(settings)
    broker = build_broker(settings)
    announce_broker(info)
    if not creates:
        require_existing(info)

    async def main() -> T:
        client = AsyncConveyor(broker)
        try:
            if check is not None:
                check(client)
            await client.connect()
            return await action(client)
        finally:
            await client.close()

    return run_loop(main())


def exit_code_for(exc: ConveyorError) -> int:
    return EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_FAILURE


def _detail_lines(details: Any) -> Iterable[str]:
    """Field-level validation problems, so `invalid payload` says what is invalid."""
    if not isinstance(details, list):
        return []
    lines = []
    for item in details:
        if isinstance(item, dict) and "msg" in item:
            loc = ".".join(str(part) for part in item.get("loc") or [])
            lines.append(f"  {loc}: {item['msg']}" if loc else f"  {item['msg']}")
    return lines


def print_error(code: str, message: str, details: Any = None) -> None:
    """On stderr: `error: <code>: <message>` and the field problems, or with --json the API's
    envelope `{"error": {"code", "message", "details"}}` on one line."""
    if wants_json():
        echo_err_json({"error": {"code": str(code), "message": message, "details": details}})
        return
    click.echo(f"error: {code}: {message}", err=True)
    for line in _detail_lines(details):
        click.echo(line, err=True)


def report_error(exc: ConveyorError) -> NoReturn:
    print_error(exc.code, exc.message, exc.details)
    raise click.exceptions.Exit(exit_code_for(exc))
