"""Run the CLI in-process (click's runner) against the test database: fast, and the same code
path as the console script."""

from __future__ import annotations

import os

from click.testing import CliRunner
from sqlalchemy.orm import Session

from ledger.cli.main import cli
from ledger.members.service import MemberInput, add_member
from tests.conftest import TEST_DATABASE_URL


def add_members(engine, *items: MemberInput) -> None:
    with Session(engine) as session:
        for item in items:
            add_member(session, item)
        session.commit()


def subprocess_env(sim=None, **extra: str) -> dict:
    """The environment for `python -m ledger` in a subprocess: the test database, the
    simulator's hosts, nothing of the caller's POPBILL_/LINKHUB_/LEDGER_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    env["LEDGER_DATABASE_URL"] = TEST_DATABASE_URL
    if sim is not None:
        env.update(POPBILL_API_URL=sim.url, LINKHUB_AUTH_URL=sim.url)
    env.update(extra)
    return env


def run(*args: str, env: dict | None = None, stdin: str | None = None):
    clean = {k: None for k in os.environ if k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    result = CliRunner().invoke(
        cli, list(args), env={**clean, "LEDGER_DATABASE_URL": TEST_DATABASE_URL, **(env or {})}, input=stdin
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result
