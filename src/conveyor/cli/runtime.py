"""What every command shares: the settings, a client connected for the length of one command,
and the one place where a `ConveyorError` becomes `error: <code>: <message>` and an exit code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
import pydantic

from conveyor.client import AsyncConveyor
from conveyor.errors import ConveyorError, PayloadTooLarge, UnknownJobType, ValidationError
from conveyor.handlers import load_app
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
            raise ValidationError(_settings_message(exc)) from exc


def _settings_message(exc: pydantic.ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "settings"
        source = f"CONVEYOR_{field.split('.')[0].upper()}"
        option = _OPTION_OF.get(field.split(".")[0])
        where = f"{option} or {source}" if option else source
        problems.append(f"{field} ({where}): {err['msg']}")
    return "invalid settings: " + "; ".join(problems)


def state() -> CliState:
    return click.get_current_context().ensure_object(CliState)


def wants_json() -> bool:
    return state().json


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


def ensure_cwd_importable() -> None:
    """A console script's sys.path starts at its bin/ folder; `--app` modules live in the cwd."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def load_app_modules(app: str | None) -> None:
    if app:
        ensure_cwd_importable()
        load_app(app)


def run(
    action: Callable[[AsyncConveyor], Awaitable[T]], *, app: str | None = None,
    check: Callable[[AsyncConveyor], object] | None = None,
) -> T:
    """Load the app's handlers, connect a client, run `action`, and always close the client.

    `check` runs before connecting, so a bad request is reported as such even with the broker
    down.
    """
    load_app_modules(app)
    settings = state().settings()

    async def main() -> T:
        client = AsyncConveyor.from_url(settings=settings)
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


def report_error(exc: ConveyorError) -> NoReturn:
    click.echo(f"error: {exc.code}: {exc.message}", err=True)
    for line in _detail_lines(exc.details):
        click.echo(line, err=True)
    raise click.exceptions.Exit(exit_code_for(exc))
