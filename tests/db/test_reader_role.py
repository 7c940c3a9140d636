"""`ledger db create-reader` and what a reader can and cannot do, on a private PostgreSQL that
checks SCRAM passwords and logs every statement. Role names are unique per run."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger.db import migrate
from ledger.db.engine import make_engine
from ledger.db.roles import RoleError, create_reader
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.secret import Secret
from ledger.settings import Settings
from ledger.simulator import Simulator
from ledger.sync.service import sync_member
from tests.conftest import client_settings, small_config
from tests.private_servers import PrivatePostgres

CORP = "1234567890"
PASSWORD = "correct horse ledger battery"


@pytest.fixture(scope="module")
def server():
    pg = PrivatePostgres(log_statements=True, passwords=True)
    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE ledger")
    settings = dataclasses.replace(
        Settings(), database_url=Secret(f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/ledger")
    )
    engine = make_engine(settings)
    migrate.upgrade(engine)
    with Session(engine) as session:
        add_member(session, MemberInput(CORP))
        session.commit()
    yield pg, engine, settings
    engine.dispose()
    pg.close()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def connect(pg, role: str, password: str | None = PASSWORD, dbname: str = "ledger") -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=pg.port, dbname=dbname, user=role, password=password,
                           autocommit=True, connect_timeout=5)  # fmt: skip


def stored_verifier(engine, role: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}).scalar()


def test_reader_password_is_hashed_before_it_leaves_and_only_the_ledger_is_open(server):
    pg, engine, _ = server
    role = unique("reader")
    create_reader(engine, role, PASSWORD)
    assert stored_verifier(engine, role).startswith("SCRAM-SHA-256$4096:")
    assert PASSWORD not in pg.log_text()  # log_statement=all saw only the verifier
    with connect(pg, role) as conn:
        assert conn.execute("SELECT count(*) FROM members").fetchone()[0] == 1
        rights = conn.execute(
            "SELECT has_database_privilege(current_user, 'ledger', 'TEMP'),"
            " has_database_privilege(current_user, 'ledger', 'CONNECT')"
        ).fetchone()
        assert rights == (False, True)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TEMP TABLE sneaky (id int)")
    with pytest.raises(psycopg.OperationalError, match="password"):
        connect(pg, role, "wrong password")
    # Re-running for a read-only role re-grants it (a new password, too).
    create_reader(engine, role, PASSWORD + "2")
    with connect(pg, role, PASSWORD + "2") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    "grant, reason",
    [
        ("ALTER ROLE {r} SUPERUSER", "rolsuper"),
        ("ALTER ROLE {r} CREATEROLE", "rolcreaterole"),
        ("GRANT INSERT ON payments TO {r}", "writes tables"),
        ("GRANT pg_write_all_data TO {r}", "member of roles"),
    ],
)
def test_an_existing_role_with_more_than_read_rights_is_refused_and_untouched(server, grant, reason):
    pg, engine, _ = server
    role = unique("powerful")
    with engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'old-password'"))
        conn.execute(text(grant.format(r=role)))
    before = stored_verifier(engine, role)
    with pytest.raises(RoleError, match=f"more than read rights.*{reason}"):
        create_reader(engine, role, PASSWORD)
    assert stored_verifier(engine, role) == before  # the password was not reset


def test_cli_takes_the_password_from_the_environment_never_argv(server):
    pg, _, settings = server
    role = unique("cli_reader")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
    env |= {"LEDGER_DATABASE_URL": settings.database_url.reveal(), "LEDGER_READER_PASSWORD": PASSWORD}
    run = subprocess.run([sys.executable, "-m", "ledger", "db", "create-reader", role], capture_output=True,
                         text=True, env=env, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    with connect(pg, role) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    refused = subprocess.run([sys.executable, "-m", "ledger", "db", "create-reader", role, "--password", "x"],
                             capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert refused.returncode != 0 and "--password" in refused.stderr


def test_a_reader_cannot_stop_the_syncs_and_a_foreign_lock_is_reported(server):
    pg, engine, settings = server
    role = unique("reader")
    create_reader(engine, role, PASSWORD)
    with Simulator(small_config(history_days=5)) as sim, PopbillClient(client_settings(sim)) as client:
        with connect(pg, role) as reader:
            reader.autocommit = False
            # What the reader can do: hold every advisory lock the sync used to take (0x4C44), and a
            # long transaction...
            reader.execute("SELECT pg_advisory_lock(19524, k) FROM generate_series(0, 30) k")
            reader.execute("SELECT count(*) FROM sync_locks")
            # ...but not the sync's lock, which needs UPDATE rights.
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("SELECT 1 FROM sync_locks FOR NO KEY UPDATE NOWAIT")
            reader.rollback()
            # ...nor write a lease naming itself.
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("UPDATE sync_locks SET holder_pid = pg_backend_pid()")
            reader.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("INSERT INTO sync_locks (member_id, kind, holder_pid) SELECT id, 'usage', 1 FROM members")
            reader.rollback()
            reader.execute("SELECT pg_advisory_lock(19524, k) FROM generate_series(0, 30) k")
            reader.execute("SELECT count(*) FROM members")
            result = sync_member(engine, client, CORP, "usage", today=sim.world.today())
            assert result.status == "succeeded", result.error
        # A writer's session (not a sync) holding the lock: the sync says who, and fails loudly.
        with connect(pg, "postgres", None) as writer:
            writer.autocommit = False
            writer.execute("SET application_name = 'psql'")
            writer.execute("SELECT 1 FROM sync_locks s JOIN members m ON m.id = s.member_id FOR NO KEY UPDATE")
            skipped = sync_member(engine, client, CORP, "usage", today=sim.world.today())
            assert skipped.status == "skipped" and skipped.locked_by_other
            assert skipped.error.startswith("locked by role postgres (pid") and "'psql'" in skipped.error
            env = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
            env |= {"LEDGER_DATABASE_URL": settings.database_url.reveal(), "POPBILL_API_URL": sim.url,
                    "LINKHUB_AUTH_URL": sim.url}  # fmt: skip
            run = subprocess.run([sys.executable, "-m", "ledger", "sync", "--member", CORP, "--kind", "usage"],
                                 capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
            assert run.returncode != 0 and "not by a sync" in run.stdout + run.stderr
            writer.rollback()


def test_a_reader_at_its_connection_limit_cannot_stop_a_sync_of_a_plain_application_role(server):
    """The server allows 60 connections; without a limit a reader could take all those left to
    roles that are not superusers, and the sync, run as one, would be refused "remaining
    connection slots are reserved". At its limit the reader is refused instead, and the sync runs."""
    pg, engine, _ = server
    reader, app = unique("reader"), unique("app")
    create_reader(engine, reader, PASSWORD, connection_limit=3)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT rolconnlimit FROM pg_roles WHERE rolname = :r"), {"r": reader}).scalar() == 3
        # The application's own role, with no superuser powers (nor their reserved slots).
        conn.execute(text(f"CREATE ROLE {app} LOGIN PASSWORD '{PASSWORD}' NOSUPERUSER"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {app}"))
        conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}"))
        conn.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {app}"))
        conn.execute(text(f"GRANT CONNECT, TEMPORARY ON DATABASE ledger TO {app}"))
    held = []
    try:
        with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
            for _ in range(60):  # as many as the server has
                held.append(connect(pg, reader))
        assert len(held) == 3
        app_settings = dataclasses.replace(
            Settings(), database_url=Secret(f"postgresql+psycopg://{app}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{pg.port}/ledger")
        )
        app_engine = make_engine(app_settings)
        try:
            with Simulator(small_config(history_days=5)) as sim, PopbillClient(client_settings(sim)) as client:
                result = sync_member(app_engine, client, CORP, "payments", today=sim.world.today())
            assert result.status == "succeeded", result.error
        finally:
            app_engine.dispose()
    finally:
        for conn in held:
            conn.close()
