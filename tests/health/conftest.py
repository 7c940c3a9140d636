from __future__ import annotations

import pytest
from sqlalchemy import text

from ledger.db.registry import metadata
from tests.scheduling.test_celery import broker, processes  # noqa: F401 - the same fixtures as there


@pytest.fixture(autouse=True)
def leave_tables_empty(request):
    """These tests commit from other processes; later tests that roll back a transaction
    (the `db` fixture) expect empty tables."""
    yield
    if "clean_engine" not in request.fixturenames:
        return
    engine = request.getfixturevalue("engine")
    names = ", ".join(t.name for t in reversed(metadata.sorted_tables) if not t.info.get("reference_data"))
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
