"""The suite and .ci/run create and drop only databases and roles named for their own run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import (
    BASE_NAME,
    RUN_SUFFIX,
    TEST_DATABASE_URL,
    admin_engine,
    create_database,
    drop_database,
    unique_name,
)

ROOT = Path(__file__).resolve().parent.parent


def test_the_test_database_is_named_for_this_run(engine):
    name = make_url(TEST_DATABASE_URL).database
    assert name.endswith("_" + RUN_SUFFIX) and len(RUN_SUFFIX) == 8
    assert name.startswith(BASE_NAME[:54].lower())  # LEDGER_TEST_DATABASE_URL's name, then the run's
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar() == name


def test_a_database_of_another_run_is_left_alone(engine):
    """A database with the configured base name (another user's) survives create/drop of ours."""
    admin = admin_engine()
    foreign = f"{make_url(TEST_DATABASE_URL).database[:50]}_other"  # not ending in our suffix
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{foreign}"'))
    try:
        mine = unique_name("scratch")
        create_database(mine)
        drop_database(mine)
        with pytest.raises(AssertionError):
            drop_database(foreign)
        with admin.connect() as conn:
            names = set(conn.scalars(text("SELECT datname FROM pg_database")))
        assert foreign in names and mine not in names
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{foreign}"'))
        admin.dispose()


def test_every_database_and_role_the_tests_name_starts_with_the_configured_name():
    """Names come from unique_name, which starts them with LEDGER_TEST_DATABASE_URL's database."""
    reader = unique_name("reader")
    assert reader.startswith(BASE_NAME[:33].lower()) and reader.endswith(f"_reader_{RUN_SUFFIX}")
    long = unique_name("y" * 20)
    assert long.endswith("_" + "y" * 20 + "_" + RUN_SUFFIX) and len(long.encode()) <= 63
    calls = re.compile(r"unique_name\((?:\"|')([^\"']*)")
    purposes = [m.group(1) for p in ROOT.joinpath("tests").rglob("*.py") for m in calls.finditer(p.read_text())]
    assert purposes and not [p for p in purposes if p.startswith("ledger")], purposes  # no name of its own


def test_no_fixed_name_is_dropped_with_force():
    """Every DROP in the tests and .ci/run names a computed (run-unique) database or role."""
    sources = [*ROOT.joinpath("tests").rglob("*.py"), ROOT / ".ci" / "run"]
    drop = re.compile(r"DROP (?:DATABASE|ROLE) (?:IF EXISTS )?\"?([^\s\";')]+)", re.IGNORECASE)
    offenders = [f"{p.name}: {m.group(0)}" for p in sources if p != Path(__file__)
                 for m in drop.finditer(p.read_text()) if not re.search(r"[{$]", m.group(1))]  # fmt: skip
    assert offenders == []
