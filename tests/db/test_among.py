"""Lists longer than PostgreSQL's 65,535 parameters: a partner with 100,000 members names them all."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from ledger.db.among import among
from ledger.members.models import Member
from ledger.sync.service import members_to_sync

MANY = [f"{n:010d}" for n in range(1_000_000_000, 1_000_070_000)]  # 70,000 CorpNums


def test_a_list_over_the_parameter_limit_is_one_parameter(clean_engine):
    with clean_engine.begin() as conn:
        conn.execute(text("INSERT INTO members (corp_num) VALUES ('1000000007'), ('1000069999'), ('2000000000')"))
    try:
        with clean_engine.connect() as conn:
            with pytest.raises(SQLAlchemyError, match="65535"):  # what an IN list of them does
                conn.execute(select(Member.corp_num).where(Member.corp_num.in_(MANY))).all()
            conn.rollback()
            found = conn.execute(select(Member.corp_num).where(among(Member.corp_num, MANY))).scalars().all()
        assert sorted(found) == ["1000000007", "1000069999"]
        assert members_to_sync(clean_engine, MANY) == ["1000000007", "1000069999"]
    finally:  # tests after this one may expect no members (the truncate trigger empties usages too)
        with clean_engine.begin() as conn:
            conn.execute(text("TRUNCATE members CASCADE"))
