from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from ledger.db import migrate
from ledger.db.engine import make_engine
from ledger.db.registry import metadata
from ledger.kst import KST, today_kst
from ledger.popbill import PopbillClient
from ledger.secret import Secret
from ledger.settings import Settings
from ledger.simulator import SimConfig, Simulator
from tests.receivers import WebhookReceiver

# A start fixed to the day makes generated histories repeatable, and keeps them within the
# sync's default first window (a year back from today) whenever the tests run.
SIM_START = dt.datetime.combine(today_kst() - dt.timedelta(days=2), dt.time(15, 0), tzinfo=KST)
MEMBER = "1234567890"


def small_config(**overrides) -> SimConfig:
    options = {"seed": 7, "start": SIM_START, "history_days": 90, "usage_per_day": 6.0}
    options.update(overrides)
    return SimConfig(**options)


@pytest.fixture
def simulator():
    with Simulator(small_config()) as sim:
        yield sim


def client_settings(sim: Simulator, **overrides) -> Settings:
    base = Settings().with_hosts(sim.url)
    options = {"retry_backoff": 0.01, "retry_attempts": 4, "read_timeout": 2.0, "connect_timeout": 2.0}
    options.update(overrides)
    return dataclasses.replace(base, **options)


@pytest.fixture
def hook():
    """A local HTTP receiver standing in for a webhook endpoint."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def client(simulator):
    with PopbillClient(client_settings(simulator)) as popbill:
        yield popbill


# -- database ------------------------------------------------------------------------------

# Every database and role the suite creates carries this run's suffix, and only those are
# dropped: the suite never touches what another run (or a person) made on a shared server.
RUN_SUFFIX = secrets.token_hex(4)


_BASE_URL = make_url(
    os.environ.get("LEDGER_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/ledger_test")
)
BASE_NAME = _BASE_URL.database or "ledger_test"  # the configured name: every name below starts with it


def add_members(engine, members) -> None:
    """Members added and committed: corp numbers, or a dict of corp number -> name."""
    from ledger.members.service import MemberInput, add_member

    names = members if isinstance(members, dict) else dict.fromkeys(members)
    with Session(engine) as session:
        for corp, name in names.items():
            add_member(session, MemberInput(corp, name=name))
        session.commit()


def unique_name(purpose: str = "") -> str:
    """A database or role name of this run only: the configured test database's name, what it is
    for, and the run's suffix (`ledger_test_empty_1a2b3c4d`): lower-case (roles are named
    unquoted), within PostgreSQL's 63 bytes."""
    assert len(purpose) <= 20, "a short purpose: the configured name keeps the rest of the 63 bytes"
    stem = f"{BASE_NAME[: 53 - len(purpose)]}_{purpose}" if purpose else BASE_NAME[:54]
    return f"{stem}_{RUN_SUFFIX}".lower()


TEST_DATABASE_URL = _BASE_URL.set(database=unique_name()).render_as_string(hide_password=False)


CLAIM_KEY = "ledger-test-run"


def _claim_broker_database() -> str:
    """The Redis database this run's Celery tests use, and may empty: LEDGER_TEST_BROKER_URL
    when set (the person running the tests chose it), else one of databases 1-15 that is empty,
    claimed with a key naming this run, so two runs on one Redis never share one."""
    configured = os.environ.get("LEDGER_TEST_BROKER_URL")
    if configured:
        return configured
    import random

    import redis

    numbers = list(range(1, 16))
    random.shuffle(numbers)
    for number in numbers:
        url = f"redis://127.0.0.1:6379/{number}"
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=2)
            if client.dbsize() == 0 and client.set(CLAIM_KEY, RUN_SUFFIX, nx=True):
                return url
        except redis.RedisError:
            return url  # no Redis here: the broker fixture says so
    raise RuntimeError("no empty Redis database (1-15) for this run: set LEDGER_TEST_BROKER_URL")


TEST_BROKER_URL = _claim_broker_database()


def admin_engine():
    """AUTOCOMMIT on the server's postgres database, for CREATE/DROP DATABASE."""
    return create_engine(make_url(TEST_DATABASE_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")


def _on_admin(statement: str) -> None:
    admin = admin_engine()
    with admin.connect() as conn:
        conn.execute(text(statement))
    admin.dispose()


def create_database(name: str) -> str:
    """Create a database of this run (the name must come from unique_name) and return its URL."""
    assert name.endswith(RUN_SUFFIX), "only databases named for this run may be created and dropped"
    _on_admin(f'CREATE DATABASE "{name}"')
    return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    assert name.endswith(RUN_SUFFIX), "only databases named for this run may be dropped"
    _on_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def db_settings() -> Settings:
    return dataclasses.replace(Settings(), database_url=Secret(TEST_DATABASE_URL))


_session_engines: list = []  # the test database's engine, once some test has asked for it


@pytest.fixture(scope="session")
def engine(db_settings):
    """A fresh test database, its schema built by Alembic (never by create_all)."""
    name = make_url(TEST_DATABASE_URL).database
    create_database(name)
    eng = make_engine(db_settings)
    try:
        migrate.upgrade(eng)
        _session_engines.append(eng)
        yield eng
    finally:
        _session_engines.clear()
        eng.dispose()
        drop_database(name)


@pytest.fixture
def db(engine):
    """An ORM session inside a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


def _ledger_tables() -> list[str]:
    return [t.name for t in reversed(metadata.sorted_tables) if not t.info.get("reference_data")]


def empty_ledger(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_ledger_tables())} RESTART IDENTITY CASCADE"))


def _tables_with_rows(engine) -> list[str]:
    """Ledger tables that hold rows, and tables that are not the ledger's at all (a test's copy)."""
    probes = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {name})" for name in _ledger_tables())
    with engine.connect() as conn:
        found = list(conn.scalars(text(probes)))
        tables = conn.scalars(text("SELECT table_name FROM information_schema.tables "
                                   "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"))  # fmt: skip
        return found + sorted(set(tables) - set(metadata.tables) - {"alembic_version"})


def _drop_strangers(engine) -> None:
    with engine.begin() as conn:
        tables = conn.scalars(text("SELECT table_name FROM information_schema.tables "
                                   "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"))  # fmt: skip
        for name in sorted(set(tables) - set(metadata.tables) - {"alembic_version"}):
            conn.execute(text(f'DROP TABLE "{name}"'))


@pytest.fixture
def clean_engine(engine):
    """For code that commits on its own connections (the sync, a subprocess): the test starts on
    the empty ledger every test leaves, and its rows are removed after it."""
    yield engine
    empty_ledger(engine)


@pytest.fixture
def committed(clean_engine):
    """The same as clean_engine (an older name for it)."""
    return clean_engine


@pytest.fixture(scope="module", autouse=True)
def module_leaves_the_ledger_empty(request):
    """Tests clean up after themselves, so none depends on the order they run in: after each
    module the test database holds no ledger rows and no table of a test's own. A module that
    leaves some fails here (on its last test), and they are removed so the next starts clean."""
    yield
    if not _session_engines:
        return
    left = _tables_with_rows(_session_engines[0])
    if left:
        empty_ledger(_session_engines[0])
        _drop_strangers(_session_engines[0])
        pytest.fail(
            f"{request.module.__name__} left rows in (or tables of its own) {', '.join(left)}: the fixture that "
            "made them must remove them after its tests (clean_engine empties the ledger's)",
            pytrace=False,
        )


def pytest_sessionfinish(session, exitstatus):
    """Give back the Redis database this run claimed (emptied: only this run used it)."""
    if os.environ.get("LEDGER_TEST_BROKER_URL"):
        return
    import redis

    try:
        client = redis.Redis.from_url(TEST_BROKER_URL, socket_connect_timeout=2)
        if client.get(CLAIM_KEY) == RUN_SUFFIX.encode():
            client.flushdb()
    except redis.RedisError:
        pass
