"""usages carry no foreign key to members (it cost 30% of PostgreSQL's write time); what keeps
every usage row attached to its member instead is that members are never deleted."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ledger.members.service import MemberInput, add_member, set_active
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.service import sync_member
from tests.conftest import client_settings, small_config

CORP = "1234567890"


@pytest.fixture
def ledger_db(clean_engine):
    yield clean_engine
    # Members cannot be deleted, so leave nothing behind for tests on the shared database.
    with clean_engine.begin() as conn:
        conn.execute(text("TRUNCATE members RESTART IDENTITY CASCADE"))


def test_a_member_with_usage_cannot_be_deleted_and_its_rows_stay_attached(ledger_db):
    clean_engine = ledger_db
    with Session(clean_engine) as session:
        add_member(session, MemberInput(CORP))
        session.commit()
    with Simulator(small_config(history_days=20)) as sim, PopbillClient(client_settings(sim)) as client:
        assert sync_member(clean_engine, client, CORP, "usage", today=sim.world.today()).status == "succeeded"
    assert "fk_usages_member_id_members" not in {fk["name"] for fk in inspect(clean_engine).get_foreign_keys("usages")}

    with clean_engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM usages")).scalar()
        assert stored > 0
        with pytest.raises(IntegrityError) as refused:
            conn.execute(text("DELETE FROM members WHERE corp_num = :c"), {"c": CORP})
        assert isinstance(refused.value.orig, psycopg.errors.RestrictViolation)
        assert "deactivated, never deleted" in str(refused.value.orig)
        conn.rollback()

    with Session(clean_engine) as session:
        set_active(session, CORP, False)
        session.commit()
    with clean_engine.connect() as conn:
        orphans = conn.execute(
            text("SELECT count(*) FROM usages u WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.id = u.member_id)")
        ).scalar()
        kept = conn.execute(text("SELECT count(*) FROM usages")).scalar()
    assert (orphans, kept) == (0, stored)


def test_truncating_members_empties_usages_as_the_cascade_did(ledger_db):
    with Session(ledger_db) as session:
        add_member(session, MemberInput(CORP))
        session.commit()
    with Simulator(small_config(history_days=10)) as sim, PopbillClient(client_settings(sim)) as client:
        assert sync_member(ledger_db, client, CORP, "usage", today=sim.world.today()).status == "succeeded"
    with ledger_db.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM usages")).scalar() > 0
        conn.execute(text("TRUNCATE members RESTART IDENTITY CASCADE"))
    with ledger_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM usages")).scalar() == 0
