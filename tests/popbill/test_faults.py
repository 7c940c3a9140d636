"""Injected faults over real HTTP: what is retried, what is not, and what reached the server."""

from __future__ import annotations

import datetime as dt
import socket
from decimal import Decimal

import pytest

from ledger.popbill import (
    BusinessError,
    PaymentForm,
    PopbillClient,
    ReadTimeoutError,
    RefundForm,
    ServerError,
    TransportError,
    codes,
)
from tests.conftest import MEMBER, client_settings

FORM = PaymentForm("담당자", "a@example.com", "010-1111-2222", "입금자", Decimal("22000"))


def use_history_calls(sim):
    return sim.requests("/UseHistory")


def fetch_all(client, sim):
    today = sim.world.today()
    return [
        r.raw
        for p in client.iter_use_history(MEMBER, today - dt.timedelta(days=100), today, per_page=200)
        for r in p.items
    ]


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 500},
        {"kind": "status", "status": 503},
        {"kind": "rate_limit", "retry_after": 0.01},
        {"kind": "drop"},
        {"kind": "malformed_json"},
        {"kind": "truncated_gzip"},
        {"kind": "stall", "seconds": 3},
        {"kind": "latency", "seconds": 0.05},
    ],
    ids=lambda f: f["kind"] + str(f.get("status", "")),
)
def test_transient_faults_on_reads_are_retried_and_succeed(simulator, fault):
    with PopbillClient(client_settings(simulator, read_timeout=0.5)) as client:
        client.get_balance(MEMBER)  # token first, so the fault meets the history call
        simulator.inject(path="/UseHistory", count=2, **fault)
        rows = fetch_all(client, simulator)
    assert rows == simulator.world.usage_truth(MEMBER)
    faulted = [r for r in use_history_calls(simulator) if r.fault]
    assert len(faulted) == 2


def test_retry_after_is_honoured(simulator, client):
    client.get_balance(MEMBER)
    simulator.inject("rate_limit", path="/RefundPoint", count=1, retry_after=0.3)
    import time

    started = time.monotonic()
    client.get_refundable_balance(MEMBER)
    assert time.monotonic() - started >= 0.3


def test_faults_at_a_rate_still_give_the_whole_history(simulator):
    with PopbillClient(client_settings(simulator, retry_attempts=8)) as client:
        simulator.inject("status", status=503, path="/UseHistory", rate=0.3)
        rows = fetch_all(client, simulator)
    assert rows == simulator.world.usage_truth(MEMBER)


def test_persistent_5xx_gives_up_after_bounded_attempts(simulator, client):
    client.get_balance(MEMBER)
    simulator.inject("status", status=503, path="/RefundPoint", count=100)
    with pytest.raises(ServerError) as caught:
        client.get_refundable_balance(MEMBER)
    assert caught.value.status == 503
    assert len(simulator.requests("/RefundPoint")) == 4  # retry_attempts in the test settings


def test_business_error_raises_at_once(simulator, client):
    with pytest.raises(BusinessError):
        client.get_settle_result(MEMBER, "999999999999999999")
    assert len(simulator.requests("/Payment/")) == 1


def test_payment_request_after_read_timeout_raises_and_was_sent_once(simulator):
    with PopbillClient(client_settings(simulator, read_timeout=0.5)) as client:
        client.get_balance(MEMBER)
        simulator.inject("stall", path="/Payment", method="POST", count=1, seconds=3)
        payments_before = len(simulator.world.payments_truth(MEMBER))
        with pytest.raises(ReadTimeoutError):
            client.payment_request(MEMBER, FORM)
    assert len(simulator.requests("/Payment", method="POST")) == 1
    assert len(simulator.world.payments_truth(MEMBER)) == payments_before + 1


@pytest.mark.parametrize("kind", ["drop", "status", "malformed_json"])
def test_refund_is_not_retried_after_it_was_sent(simulator, client, kind):
    client.get_balance(MEMBER)
    simulator.inject(kind, path="/Refund", method="POST", count=1)
    form = RefundForm("담당자", "02-000-0000", Decimal("100"), "국민", "123456", "홍길동", "테스트")
    with pytest.raises((TransportError, ServerError)):
        client.refund(MEMBER, form)
    assert len(simulator.requests("/Refund", method="POST")) == 1


def test_payment_request_is_retried_when_the_connection_was_refused(simulator):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = client_settings(simulator, api_url=f"http://127.0.0.1:{closed_port}", retry_attempts=3)
    with PopbillClient(settings) as client:
        with pytest.raises(TransportError) as caught:
            client.payment_request(MEMBER, FORM)
        assert caught.value.sent is False
        assert client.stats.http_requests == 1 + 3  # the token, then three refused attempts


def test_pending_payment_becomes_complete_despite_a_dropped_poll(simulator, client):
    settle_code = client.payment_request(MEMBER, FORM).settle_code
    simulator.inject("drop", path="/Payment/", count=1)
    states = [client.get_settle_result(MEMBER, settle_code).settle_state for _ in range(2)]
    assert states[-1] == codes.SETTLE_DONE  # the dropped poll was processed, the retry is the third
