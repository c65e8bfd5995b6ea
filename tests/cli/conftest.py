"""Fixtures of the CLI tests; helpers live in cli_support."""

from __future__ import annotations

import sys

import pytest
from cli_support import Cli
from click.testing import CliRunner


@pytest.fixture
def run_cli(prefix: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    # `--app` puts the cwd on sys.path; keep that from leaking into other tests.
    monkeypatch.setattr(sys, "path", list(sys.path))
    return Cli(prefix, CliRunner())
