"""`ledger db shell` (psql, and the built-in prompt when psql is absent) and `ledger db url`."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import text

from ledger.db.shell import public_url, statements
from tests.cli.helpers import run
from tests.conftest import TEST_DATABASE_URL


def ledger(*args, env=None, stdin=None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    clean.update({"LEDGER_DATABASE_URL": TEST_DATABASE_URL, **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args], capture_output=True, text=True, env=clean, input=stdin, timeout=60
    )


def test_url_has_no_password_and_no_driver():
    assert public_url("postgresql+psycopg://ledger:s3cret@db.internal:6432/ledger") == (
        "postgresql://ledger@db.internal:6432/ledger"
    )
    result = run("db", "url", env={"LEDGER_DATABASE_URL": "postgresql://ledger:s3cret@db.internal/ledger"})
    assert result.exit_code == 0 and result.stdout.strip() == "postgresql://ledger@db.internal/ledger"
    assert "s3cret" not in result.stdout + result.stderr


def test_psql_runs_a_command_on_the_configured_database(committed):
    with committed.begin() as conn:
        conn.execute(text("INSERT INTO members (corp_num, name, active) VALUES ('1234567890', '셸상사', true)"))
    result = ledger("db", "shell", "-c", "SELECT name FROM members")
    assert result.returncode == 0 and "셸상사" in result.stdout and "(1 row)" in result.stdout
    failed = ledger("db", "shell", "-c", "SELECT * FROM no_such_table")
    assert failed.returncode != 0 and "no_such_table" in failed.stderr


def test_python_prompt_when_psql_is_absent(committed):
    with committed.begin() as conn:
        conn.execute(text("INSERT INTO members (corp_num, name, active) VALUES ('1234567890', '파이썬상사', true)"))
    script = "SELECT corp_num, name\nFROM members;\nUPDATE members SET name = name;\n"
    result = run("db", "shell", "--python", stdin=script)  # in-process: the prompt is ours, not psql
    assert result.exit_code == 0, result.output
    assert "파이썬상사" in result.stdout and "1 rows" in result.stdout
    # A failing statement stops a piped script, names the error and exits 1.
    failed = run("db", "shell", "--python", stdin="SELECT 1/0;\nSELECT 'never';\n")
    assert failed.exit_code == 1 and "division by zero" in failed.stderr and "never" not in failed.stdout
    # And psql missing from PATH falls back by itself (or to the psql the embedded server ships).
    bare = ledger(
        "db", "shell", "-c", "SELECT count(*) AS n FROM members", env={"PATH": os.path.dirname(sys.executable)}
    )
    assert bare.returncode == 0 and "1" in bare.stdout


def test_statements_split_at_line_ends():
    lines = ["SELECT 1;", "SELECT", "  2;", "\\q", "SELECT 3;"]
    assert list(statements(lines)) == ["SELECT 1", "SELECT\n  2"]
