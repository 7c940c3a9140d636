"""Deposit and refund requests whose outcome is unknown: tracked from before they are sent,
never repeated by mistake, resolved from the member's history. Every test counts what reached
the simulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.db import migrate
from ledger.db.engine import make_engine
from ledger.kst import KST, parse_popbill_datetime
from ledger.members.service import MemberInput, add_member
from ledger.pending import sending, service
from ledger.pending.models import TrackedItem
from ledger.popbill import PaymentForm, PopbillClient, RefundForm
from ledger.secret import Secret
from ledger.settings import Settings
from ledger.simulator import Simulator
from tests.conftest import client_settings, small_config
from tests.private_servers import PrivatePostgres
from tests.waiting import wait_for

CORP = "1234567890"
FORM = PaymentForm("담당자", "a@example.com", "010-0000-0000", "(주)입금", Decimal("110000"))
REFUND = RefundForm("담당", "02-000-0000", Decimal("100"), "국민", "123-456", "홍길동", "해지")


@pytest.fixture
def sim():
    # The clock starts now: matching compares Popbill's registration times with ours.
    with Simulator(small_config(start=dt.datetime.now(KST), history_days=10)) as simulator:
        yield simulator


def _setup(engine, sim, **overrides):
    settings = dataclasses.replace(client_settings(sim, read_timeout=0.5), pending_first_poll=0, **overrides)
    with Session(engine) as session:
        add_member(session, MemberInput(CORP))
        session.commit()
    return settings


@pytest.fixture
def env(clean_engine, sim):
    settings = _setup(clean_engine, sim)
    with PopbillClient(settings) as client:
        yield clean_engine, client, settings


def items(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(TrackedItem.__table__).order_by(TrackedItem.id)).all()


def posts(sim, path="/Payment") -> int:
    return len(sim.requests(path, method="POST"))


def test_read_timeout_is_unknown_not_repeated_and_resolved_from_the_history(env, sim):
    engine, client, settings = env
    sim.inject("stall", path="/Payment", method="POST", count=1, seconds=1.5)
    with pytest.raises(sending.OutcomeUnknown, match="MAY HAVE BEEN REGISTERED.*read timeout.*Do not send it again"):
        sending.request_payment(engine, client, CORP, FORM)
    assert posts(sim) == 1
    [item] = items(engine)
    assert (item.state, item.code, item.amount, item.counterparty) == ("unknown", None, Decimal("110000"), "담당자")

    # The same request again is refused without reaching Popbill...
    with pytest.raises(sending.RequestRefused, match="has an unknown outcome: it may have been registered.*--force"):
        sending.request_payment(engine, client, CORP, FORM)
    assert posts(sim) == 1 and len(items(engine)) == 1

    # ...and the poller finds it in the payment history: registered, waiting for the deposit.
    outcomes = service.poll_due(engine, client, settings)
    assert [(o.kind, o.state) for o in outcomes] == [("settle", "pending")]
    [item] = items(engine)
    [payment] = [p for p in sim.world.member(CORP).payments if p.settle_cost == 1100000]  # tenths of a won
    assert item.state == "pending" and item.registered_at is not None and item.raw_state == 1

    # The deposit arrives: the next poll sees it done in the history.
    sim.complete_payment(CORP, payment.settle_code)
    assert [o.state for o in service.poll_due(engine, client, settings)] == ["done"]
    assert posts(sim) == 1  # one deposit asked for, however many polls
    # Resolved, and still an identical request within the window: refused unless forced.
    with pytest.raises(sending.RequestRefused, match=r"item \d+, sent at .* KST, was registered \(found in the member's history\) and is done"):
        sending.request_payment(engine, client, CORP, FORM)
    assert sending.request_payment(engine, client, CORP, FORM, force=True).state == "pending"
    assert posts(sim) == 2


def test_force_sends_an_identical_request_and_each_is_matched_to_its_own_entry(env, sim):
    engine, client, settings = env
    sim.inject("drop", path="/Payment", method="POST", count=2)
    for force in (False, True):
        with pytest.raises(sending.OutcomeUnknown, match="connection dropped"):
            sending.request_payment(engine, client, CORP, FORM, force=force)
    assert posts(sim) == 2
    service.poll_due(engine, client, settings)
    first, second = items(engine)
    assert first.state == second.state == "pending"
    assert first.registered_at is not None and second.registered_at is not None
    registered = [parse_popbill_datetime(p.reg_dt) for p in sim.world.member(CORP).payments if p.settle_cost == 1100000]
    assert sorted([first.registered_at, second.registered_at]) == sorted(registered)  # each entry claimed once


def test_refund_dropped_after_processing_is_found_in_the_refund_history(env, sim):
    engine, client, settings = env
    sim.inject("drop", path="/Refund", method="POST", count=1)
    with pytest.raises(sending.OutcomeUnknown, match="Refund for 1234567890 .*MAY HAVE BEEN REGISTERED"):
        sending.request_refund(engine, client, CORP, REFUND)
    with pytest.raises(sending.RequestRefused, match="unknown outcome"):
        sending.request_refund(engine, client, CORP, REFUND)
    assert posts(sim, "/Refund") == 1
    assert [o.state for o in service.poll_due(engine, client, settings)] == ["pending"]
    [item] = items(engine)
    assert item.state == "pending" and item.counterparty == "홍길동"


def test_a_request_popbill_never_processed_becomes_not_found_after_the_grace_period(env, sim):
    engine, client, settings = env
    # A bare 503 proves nothing about processing (here it was not processed).
    sim.inject("status", path="/Payment", method="POST", count=1, status=503)
    with pytest.raises(sending.OutcomeUnknown):
        sending.request_payment(engine, client, CORP, FORM)
    assert [o.state for o in service.poll_due(engine, client, settings)] == ["unknown"]  # too early to tell
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.pending_unknown_grace + 1)
    assert [o.state for o in service.poll_due(engine, client, settings, now=later)] == ["not_found"]
    assert posts(sim) == 1
    # Proven never registered; within the window the same request still needs --force.
    with pytest.raises(sending.RequestRefused, match="never registered"):
        sending.request_payment(engine, client, CORP, FORM)
    assert sending.request_payment(engine, client, CORP, FORM, force=True).code is not None
    assert posts(sim) == 2


def test_a_refusal_from_popbill_is_final_and_never_unknown(env, sim):
    engine, client, _ = env
    sim.inject("rate_limit", path="/Payment", method="POST", count=1)
    with pytest.raises(Exception, match="429|rate") as caught:
        sending.request_payment(engine, client, CORP, FORM)
    assert not isinstance(caught.value, sending.OutcomeUnknown)
    assert [i.state for i in items(engine)] == ["refused"]
    with pytest.raises(sending.RequestRefused, match=r"was refused by Popbill \(.*429"):
        sending.request_payment(engine, client, CORP, FORM)
    assert sending.request_payment(engine, client, CORP, FORM, force=True).state == "pending"


class _Seen(logging.Handler):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.event = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@pytest.fixture
def private_db(sim):
    pg = PrivatePostgres()
    settings = dataclasses.replace(Settings(), database_url=Secret(pg.url))
    engine = make_engine(settings)
    migrate.upgrade(engine)
    try:
        yield pg, engine
    finally:
        engine.dispose()
        pg.close()


def test_database_lost_right_after_the_post_keeps_the_settle_code(private_db, sim):
    """The database goes away while the request is in flight: the code is written once it is
    back (bounded retry), never lost, and the request was sent once."""
    pg, engine = private_db
    settings = _setup(engine, sim)
    sim.inject("stall", path="/Payment", method="POST", count=1, seconds=0.3)
    retrying = _Seen("database unavailable")
    logging.getLogger("ledger").addHandler(retrying)

    def outage() -> None:
        wait_for(lambda: posts(sim) == 1, what="the PaymentRequest to reach Popbill")
        pg.stop()
        retrying.event.wait(10)  # the ledger noticed and is retrying
        pg.start()

    try:
        stopper = threading.Thread(target=outage)
        stopper.start()
        with PopbillClient(dataclasses.replace(settings, read_timeout=5)) as client:
            item = sending.request_payment(engine, client, CORP, FORM)
        stopper.join()
    finally:
        logging.getLogger("ledger").removeHandler(retrying)
    assert retrying.event.is_set()
    [row] = items(engine)
    [payment] = [p for p in sim.world.member(CORP).payments if p.settle_cost == 1100000]
    assert (row.state, row.code) == ("pending", payment.settle_code) == ("pending", item.code)
    assert posts(sim) == 1


def test_database_gone_for_good_after_the_post_prints_the_code_and_the_poller_finds_it(private_db, sim):
    pg, engine = private_db
    settings = _setup(engine, sim)
    sim.inject("stall", path="/Payment", method="POST", count=1, seconds=0.3)
    threading.Thread(target=lambda: (wait_for(lambda: posts(sim) == 1, what="the POST"), pg.stop())).start()
    with PopbillClient(dataclasses.replace(settings, read_timeout=5)) as client:
        with pytest.raises(sending.OutcomeUnknown, match=r"registered with code (\d{18}).*ledger track settle") as lost:
            sending.request_payment(engine, client, CORP, FORM)
        [payment] = [p for p in sim.world.member(CORP).payments if p.settle_cost == 1100000]
        assert payment.settle_code in str(lost.value)
        pg.start()
        # The intent is still `sending`; once it is older than a read timeout and then some,
        # the poller treats it as unknown and finds it in the history.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.read_timeout + 61)
        assert [o.state for o in service.poll_due(engine, client, settings, now=later)] == ["pending"]
    assert posts(sim) == 1


def test_cli_says_the_request_may_have_been_registered_and_refuses_a_repeat_without_force(clean_engine, sim):
    from tests.test_cli_ledger import ledger

    env = {"POPBILL_API_URL": sim.url, "LINKHUB_AUTH_URL": sim.url, "POPBILL_READ_TIMEOUT": "0.5"}
    assert ledger("members", "add", CORP, env_extra=env).returncode == 0
    args = ["payment", "request", CORP, "--amount", "110000", "--depositor", "(주)입금", "--name", "담당자",
            "--email", "a@example.com", "--hp", "010-0000-0000", "--yes"]  # fmt: skip
    sim.inject("stall", path="/Payment", method="POST", count=1, seconds=1.5)
    first = ledger(*args, env_extra=env)
    assert first.returncode != 0
    assert "MAY HAVE BEEN REGISTERED" in first.stderr and "Do not send it again" in first.stderr
    again = ledger(*args, env_extra=env)
    assert again.returncode != 0 and "--force" in again.stderr
    assert posts(sim) == 1
    forced = ledger(*args, "--force", env_extra=env)
    assert forced.returncode == 0, forced.stderr
    assert posts(sim) == 2
    assert [i.state for i in items(clean_engine)] == ["unknown", "pending"]
