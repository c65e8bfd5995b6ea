"""Fixtures of the CLI tests; helpers live in cli_support."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from tests.cli.cli_support import Cli


@pytest.fixture
def run_cli(prefix: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    # `--app` puts the cwd on sys.path; keep that from leaking into other tests.
    monkeypatch.setattr(sys, "path", list(sys.path))
    return Cli(prefix, CliRunner())
