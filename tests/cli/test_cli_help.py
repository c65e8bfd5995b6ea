"""`--help` works for every command, and the list below covers every command that exists."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from conveyor.cli.main import cli

COMMANDS = [
    "", "api", "dev", "worker", "enqueue", "job", "job show", "job retry", "job cancel",
    "dlq", "dlq list",
    "dlq redrive", "dlq purge", "stats", "workers", "queue", "queue pause", "queue resume",
    "queue delete", "queue limits", "queue keys",
    "seed",
    "jobs", "jobs list",
    "webhook", "webhook add", "webhook list", "webhook show", "webhook delete",
    "schedule", "schedule set", "schedule list", "schedule show", "schedule delete",
    "schedule pause", "schedule resume", "schedule trigger", "schedule runs",
    "schedule preview",
]


def _walk(group: click.Group, path: str = "") -> list[str]:
    found = [path]
    for name, command in group.commands.items():
        sub = f"{path} {name}".strip()
        found += _walk(command, sub) if isinstance(command, click.Group) else [sub]
    return found


def test_the_list_covers_every_command() -> None:
    assert sorted(_walk(cli)) == sorted(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS)
def test_help_exits_0(path: str) -> None:
    result = CliRunner().invoke(cli, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: cli {path}".rstrip())


def test_no_command_prints_usage() -> None:
    result = CliRunner().invoke(cli, [])
    assert result.exit_code in (0, 2)
    assert "Commands:" in result.output


def test_unknown_option_is_usage_error() -> None:
    result = CliRunner().invoke(cli, ["stats", "--nope"])
    assert result.exit_code == 2
    assert "No such option" in result.stderr


@pytest.mark.parametrize("path", ["worker", "api", "dev"])
def test_commands_that_log_document_the_log_format(path: str) -> None:
    out = CliRunner().invoke(cli, [path, "--help"], terminal_width=200).stdout
    assert "--log-format [auto|json|text]" in out
    assert "CONVEYOR_LOG_FORMAT" in out
