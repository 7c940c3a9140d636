"""A read-only role for accountants: SELECT on the ledger's tables and views, nothing else."""

from __future__ import annotations

import re

from sqlalchemy import Engine, text

from ledger.errors import UserInputError

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RoleError(UserInputError):
    pass


def create_reader(engine: Engine, role: str, password: str | None = None) -> None:
    """Create (or re-grant) ROLE. Tables and views added by later migrations are covered by
    default privileges. The password goes to the server and nowhere else."""
    if not _IDENTIFIER.match(role):
        raise RoleError(f"ROLE: lower-case letters, digits and _ only, starting with a letter; got {role!r}")
    with engine.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar()
        if not exists:
            conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"))
        if password:
            quoted = conn.execute(text("SELECT quote_literal(:p)"), {"p": password}).scalar()
            conn.execute(text(f"ALTER ROLE {role} PASSWORD {quoted}"))
        database = conn.execute(text("SELECT current_database()")).scalar()
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {role}'))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
        conn.execute(text(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}"))
        conn.execute(text(f"REVOKE CREATE ON SCHEMA public FROM {role}"))
