"""The sync lease (ledger.sync.locks): held by another process's lock connection, a sync is
turned away as already running; a lease whose session died, or whose pid was reused, is free;
a live session that is not a sync is named; a cut lock connection takes its leases back."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.locks import APPLICATION_NAME, sync_lock
from ledger.sync.service import sync_member
from tests.conftest import TEST_DATABASE_URL, client_settings, small_config

CORP = "1234567890"


@pytest.fixture
def member_id(clean_engine) -> int:
    with Session(clean_engine) as session:
        member = add_member(session, MemberInput(CORP))
        session.commit()
        return member.id


@pytest.fixture
def other_process(clean_engine):
    """A second engine: its own lock connection, as another worker process would have."""
    engine = create_engine(clean_engine.url)
    yield engine
    engine.dispose()


@pytest.fixture
def client():
    with Simulator(small_config(history_days=5)) as sim, PopbillClient(client_settings(sim)) as c:
        yield c


def raw_session(application: str) -> psycopg.Connection:
    url = TEST_DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url, autocommit=True, application_name=application)


def name_self_in_lease(conn: psycopg.Connection, member_id: int, *, started: str = "backend_start") -> int:
    conn.execute(
        "INSERT INTO sync_locks (member_id, kind) VALUES (%s, 'usage') ON CONFLICT DO NOTHING", (member_id,)
    )
    conn.execute(
        f"UPDATE sync_locks SET holder_pid = a.pid, holder_started = a.{started} "
        "FROM pg_stat_activity a WHERE a.pid = pg_backend_pid() AND member_id = %s AND kind = 'usage'",
        (member_id,),
    )
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def lease(engine, member_id: int) -> int | None:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT holder_pid FROM sync_locks WHERE member_id = :m AND kind = 'usage'"), {"m": member_id}
        ).scalar()


def test_another_process_holding_the_lease_turns_the_sync_away(clean_engine, other_process, member_id, client):
    with sync_lock(other_process, member_id, "usage") as holder:
        assert holder is None
        held_by = lease(clean_engine, member_id)
        assert held_by is not None
        skipped = sync_member(clean_engine, client, CORP, "usage", today=client.today())
        assert (skipped.status, skipped.error, skipped.locked_by_other, skipped.api_calls) == (
            "skipped", "already running", False, 0,
        )  # fmt: skip
        assert lease(clean_engine, member_id) == held_by  # untouched
    assert lease(clean_engine, member_id) is None  # released
    done = sync_member(clean_engine, client, CORP, "usage", today=client.today())
    assert done.status == "succeeded", done.error
    assert lease(clean_engine, member_id) is None


def test_a_dead_holders_lease_is_free_and_a_live_non_sync_one_is_named(clean_engine, member_id, client):
    # A sync's lock connection that dies (its process killed) while naming itself in the lease.
    dying = raw_session(APPLICATION_NAME)
    pid = name_self_in_lease(dying, member_id)
    assert sync_member(clean_engine, client, CORP, "usage", today=client.today()).error == "already running"
    with clean_engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    dying.close()
    after_death = sync_member(clean_engine, client, CORP, "usage", today=client.today())
    assert after_death.status == "succeeded", after_death.error

    # A lease naming a live pid whose session started at another time: the pid was reused.
    with raw_session("psql") as reused:
        name_self_in_lease(reused, member_id, started="backend_start - interval '1 hour'")
        assert sync_member(clean_engine, client, CORP, "usage", today=client.today()).status == "succeeded"

    # A live session that is not a sync, named in the lease: reported by name, not waited for.
    with raw_session("psql") as foreign:
        pid = name_self_in_lease(foreign, member_id)
        skipped = sync_member(clean_engine, client, CORP, "usage", today=client.today())
        assert skipped.status == "skipped" and skipped.locked_by_other
        assert skipped.error == f"locked by role postgres (pid {pid}, application 'psql'), not by a sync"
        assert lease(clean_engine, member_id) == pid


def test_a_cut_lock_connection_takes_its_leases_back(clean_engine, other_process, member_id, client):
    with sync_lock(clean_engine, member_id, "usage") as holder:
        assert holder is None
        first = lease(clean_engine, member_id)
        with clean_engine.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar()
        # The next use of the lock connection finds it cut, opens another and moves the lease.
        with sync_lock(clean_engine, member_id, "payments") as also:
            assert also is None
        second = lease(clean_engine, member_id)
        assert second not in (None, first)
        with sync_lock(other_process, member_id, "usage") as other:
            assert other is not None and other.is_sync
    assert lease(clean_engine, member_id) is None
