"""A read-only role for accountants: SELECT on the ledger's tables and views, nothing else.

- An existing role is only re-granted when it is itself read-only: a superuser, a role that
  may create roles or databases, replicate or bypass row security, a member of other roles, an
  owner of anything here or a holder of any write right is refused, never altered.
- The password is hashed here (SCRAM-SHA-256, by libpq's PQencryptPasswordConn, the code psql's
  \\password uses): the server, its statement log and pg_stat_activity only see the hash.
- At most LEDGER_READER_CONNECTION_LIMIT connections at once (10), so a reader cannot take the
  connections the application needs (README "Reliability" says how to reserve some for it).
- CONNECT on the ledger database only, no TEMP (TEMP is taken from PUBLIC on this database and
  kept for the role running this). CONNECT on the cluster's other databases comes from PUBLIC
  by default: README "Reliability" says how to revoke it there.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, Engine, text

from ledger.errors import UserInputError

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SCRAM = re.compile(r"^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$")


class RoleError(UserInputError):
    pass


_POWERS = text(
    """
    SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,
           EXISTS (SELECT 1 FROM pg_auth_members WHERE member = r.oid) AS member_of_roles,
           EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.relowner = r.oid AND n.nspname NOT IN ('pg_catalog', 'information_schema')) AS owns_relations,
           EXISTS (SELECT 1 FROM pg_namespace WHERE nspowner = r.oid) AS owns_schemas,
           EXISTS (SELECT 1 FROM pg_database WHERE datdba = r.oid) AS owns_databases,
           EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                     AND has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                  ) AS writes_tables,
           has_schema_privilege(r.oid, 'public', 'CREATE') AS creates_in_schema,
           has_database_privilege(r.oid, current_database(), 'CREATE') AS creates_in_database
    FROM pg_roles r WHERE r.rolname = :r
    """
)


def _excess_rights(conn: Connection, role: str) -> list[str] | None:
    """None when the role does not exist; else the rights it has beyond reading."""
    row = conn.execute(_POWERS, {"r": role}).one_or_none()
    if row is None:
        return None
    return [name.replace("_", " ") for name, held in row._mapping.items() if held]


def hash_password(conn: Connection, role: str, password: str) -> str:
    """SCRAM-SHA-256 verifier computed on this side (libpq), never the password itself."""
    pgconn = conn.connection.dbapi_connection.pgconn
    verifier = pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    if not _SCRAM.match(verifier):  # it goes into a statement: be sure of its shape
        raise RoleError("could not hash the password as SCRAM-SHA-256")
    return verifier


def create_reader(engine: Engine, role: str, password: str | None = None, *, connection_limit: int = 10) -> None:
    """Create ROLE (or re-grant it, when it is read-only). Tables and views added by later
    migrations are covered by default privileges. The role may hold at most `connection_limit`
    connections at once (LEDGER_READER_CONNECTION_LIMIT): a report tool opening one per sheet
    must not take the slots the syncs need."""
    if not _IDENTIFIER.match(role):
        raise RoleError(f"ROLE: lower-case letters, digits and _ only, starting with a letter; got {role!r}")
    if isinstance(connection_limit, bool) or not isinstance(connection_limit, int) or connection_limit < 1:
        raise RoleError(f"LEDGER_READER_CONNECTION_LIMIT: a whole number of at least 1, got {connection_limit!r}")
    with engine.begin() as conn:
        if role == conn.execute(text("SELECT current_user")).scalar():
            raise RoleError(f"ROLE: {role} is the role running this command; choose another name")
        excess = _excess_rights(conn, role)
        if excess:
            raise RoleError(
                f"ROLE: {role} already exists with more than read rights ({', '.join(excess)}); "
                "refusing to touch it. Choose another name."
            )
        if excess is None:
            conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"))
        conn.execute(text(f"ALTER ROLE {role} CONNECTION LIMIT {int(connection_limit)}"))
        if password:
            # exec_driver_sql: the verifier's colons are not bind parameters.
            conn.exec_driver_sql(f"ALTER ROLE {role} PASSWORD '{hash_password(conn, role, password)}'")
        database = conn.execute(text("SELECT current_database()")).scalar()
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {role}'))
        # TEMP comes from PUBLIC: take it from PUBLIC here, keep it for the operator's role
        # (the sync's COPY merges use temporary tables).
        conn.execute(text(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC'))
        conn.execute(text(f'GRANT TEMPORARY ON DATABASE "{database}" TO CURRENT_USER'))
        conn.execute(text(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM {role}'))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
        conn.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}"))
        conn.execute(text(f"REVOKE CREATE ON SCHEMA public FROM {role}"))
