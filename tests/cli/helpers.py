"""Run the CLI in-process (click's runner) against the test database: fast, and the same code
path as the console script."""

from __future__ import annotations

import os

from click.testing import CliRunner

from ledger.cli.main import cli
from tests.conftest import TEST_DATABASE_URL


def run(*args: str, env: dict | None = None, stdin: str | None = None):
    clean = {k: None for k in os.environ if k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    result = CliRunner().invoke(
        cli, list(args), env={**clean, "LEDGER_DATABASE_URL": TEST_DATABASE_URL, **(env or {})}, input=stdin
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result
