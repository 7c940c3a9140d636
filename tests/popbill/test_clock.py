"""Popbill's clock (POPBILL_USE_LOCAL_TIME=false): GET /Time, signing and token expiry by it,
the sync's "today" from it; and the expired_token fault sparing token requests."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from ledger.members.service import MemberInput, add_member
from ledger.popbill import AuthError, ClockError, PopbillClient
from ledger.settings import Settings
from ledger.simulator import Simulator
from ledger.simulator import errors as sim_errors
from ledger.sync.service import sync_member
from tests.conftest import MEMBER, client_settings, small_config
from tests.sync.helpers import assert_ledger_equals_truth


def token_requests(sim) -> int:
    return len(sim.requests("/POPBILL_TEST/Token"))


def test_time_answers_the_simulated_clock_and_follows_it_forward(simulator):
    with PopbillClient(client_settings(simulator)) as client:
        before = client.get_server_time()
        assert abs(before - simulator.world.now().astimezone(dt.UTC)) <= dt.timedelta(seconds=2)
        simulator.advance_days(3)
        after = client.get_server_time()
    assert dt.timedelta(days=3) <= after - before <= dt.timedelta(days=3, seconds=5)


def test_a_client_on_popbills_clock_is_accepted_where_its_own_clock_is_refused():
    with Simulator(small_config(start=None)) as sim:
        sim.skew_clock(2 * 3600)  # Linkhub's clock two hours ahead of this machine's
        local = client_settings(sim, retry_attempts=1)
        with PopbillClient(local) as client, pytest.raises(AuthError) as refused:
            client.get_balance(MEMBER)
        assert refused.value.code == sim_errors.STALE_DATE
        with PopbillClient(dataclasses.replace(local, use_local_time=False)) as client:
            assert client.get_balance(MEMBER) == sim.world.balance(MEMBER)
            assert client.today() == sim.world.today()
        assert len(sim.requests("/Time")) == 1  # measured once, not before every request


def test_token_expiry_is_judged_by_popbills_clock():
    # Linkhub's clock 200 s behind ours and tokens living 100 s: by the local clock every token
    # arrives already expired. That is doubt, not a token to fetch again for every call: asked
    # once more, then refused with the clock named. By Popbill's clock it is reused.
    with Simulator(small_config(start=None), token_lifetime=100) as sim:
        sim.skew_clock(-200)
        with PopbillClient(client_settings(sim)) as local:
            with pytest.raises(ClockError, match="already past by this machine's clock.*POPBILL_USE_LOCAL_TIME=false"):
                local.get_balance(MEMBER)
        assert token_requests(sim) == 2 and sim.requests("/POPBILL_TEST/Point") == []
        sim.reset_requests()
        with PopbillClient(client_settings(sim, use_local_time=False)) as server_clock:
            for _ in range(3):
                server_clock.get_balance(MEMBER)
        assert token_requests(sim) == 1


def test_expired_token_fault_never_answers_the_token_request(simulator):
    simulator.inject("expired_token", count=1)
    with PopbillClient(client_settings(simulator)) as client:
        assert client.get_balance(MEMBER) == simulator.world.balance(MEMBER)
    log = [(r.path, r.fault, r.status) for r in simulator.requests()]
    # The first token request is served; the fault lands on the first call carrying a token,
    # which the client answers by renewing once.
    assert log == [
        ("/POPBILL_TEST/Token", None, 200),
        ("/POPBILL_TEST/Point", "expired_token", 401),
        ("/POPBILL_TEST/Token", None, 200),
        ("/POPBILL_TEST/Point", None, 200),
    ]


def test_sync_reaches_the_simulators_today_on_popbills_clock(committed):
    from sqlalchemy.orm import Session

    clean_engine = committed
    with Simulator(small_config()) as sim:
        with Session(clean_engine) as session, session.begin():
            add_member(session, MemberInput(MEMBER))
        sim.advance_days(4)  # the simulated today is now ahead of this machine's
        assert sim.world.today() > dt.date.today()
        settings = client_settings(sim, use_local_time=False)
        with PopbillClient(settings) as client:
            assert client.today() == sim.world.today()
            for kind in ("usage", "payments", "refunds"):
                assert sync_member(clean_engine, client, MEMBER, kind).status == "succeeded"
        assert_ledger_equals_truth(clean_engine, sim, [MEMBER])


def test_use_local_time_is_read_from_the_environment():
    assert Settings.from_env({}).use_local_time is True
    assert Settings.from_env({"POPBILL_USE_LOCAL_TIME": "false"}).use_local_time is False
