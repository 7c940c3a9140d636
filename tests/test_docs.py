"""The ten example queries in docs/accountants.md run against the real schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text

DOC = (Path(__file__).resolve().parents[1] / "docs" / "accountants.md").read_text(encoding="utf-8")
BLOCK = DOC[DOC.index("-- 1.") : DOC.index("```", DOC.index("-- 1."))]
QUERIES = [q.strip() for q in re.split(r"\n(?=-- \d+\.)", BLOCK) if q.strip()]


def test_there_are_ten():
    assert len(QUERIES) == 10


@pytest.mark.parametrize("query", QUERIES, ids=[q.splitlines()[0][3:40] for q in QUERIES])
def test_query_runs(engine, query):
    with engine.connect() as conn:
        conn.execute(text(query)).all()
