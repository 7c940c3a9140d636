"""Every call through our client, over real HTTP, against the simulator's ground truth."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import requests

from ledger.kst import KST
from ledger.popbill import BusinessError, ChargeInfo, PaymentForm, RefundForm, codes
from tests.conftest import MEMBER


def window(sim):
    today = sim.world.today()
    return today - dt.timedelta(days=sim.world.config.history_days + 1), today


def test_get_balance_equals_last_balance_of_the_chain(client, simulator):
    rows = simulator.world.usage_truth(MEMBER)
    balance = client.get_balance(MEMBER)
    assert isinstance(balance, Decimal)
    assert balance == Decimal(rows[-1]["balance"]) == simulator.world.balance(MEMBER)


def test_hyphenated_corp_num_is_accepted(client, simulator):
    assert client.get_balance("123-45-67890") == simulator.world.balance(MEMBER)


def test_partner_balance(client, simulator):
    assert client.get_partner_balance(MEMBER) == Decimal(simulator.world.config.partner_balance)


def test_refundable_balance_excludes_bonus(client, simulator):
    refundable = client.get_refundable_balance(MEMBER)
    assert refundable == simulator.world.refundable_balance(MEMBER)
    bonus_rows = [r for r in simulator.world.usage_truth(MEMBER) if r["txType"] == codes.TX_BONUS]
    assert bonus_rows, "this seed should grant a bonus"
    assert refundable < client.get_balance(MEMBER)


def test_unit_cost_and_charge_info(client):
    assert client.get_unit_cost(MEMBER, service_type="성명") == Decimal("25")
    assert client.get_unit_cost(MEMBER, service_type="실명") == Decimal("50")
    info = client.get_charge_info(MEMBER, service_type="실명")
    assert isinstance(info, ChargeInfo) and info.unit_cost == Decimal("50")
    assert info.charge_method and info.rate_system
    assert client.get_charge_info(MEMBER).unit_cost == Decimal("25")


@pytest.mark.parametrize("method", ["get_charge_url", "get_payment_url", "get_use_history_url"])
def test_member_popup_urls_open(client, method):
    url = getattr(client, method)(MEMBER, "user01")
    assert url.startswith("http")
    assert requests.get(url, timeout=5).status_code == 200


def test_partner_url_opens_and_expires(client, simulator):
    url = client.get_partner_url(MEMBER, "CHRG")
    assert requests.get(url, timeout=5).status_code == 200
    key = url.rsplit("/", 1)[-1]
    simulator.popups[key] = 0  # as if 30 seconds had passed
    assert requests.get(url, timeout=5).status_code == 403


def test_use_history_pages_cover_the_truth_in_both_orders(client, simulator):
    start, end = window(simulator)
    truth = simulator.world.usage_truth(MEMBER)
    ascending = [r.raw for p in client.iter_use_history(MEMBER, start, end, per_page=100, order="A") for r in p.items]
    assert ascending == truth
    descending = [r.raw for p in client.iter_use_history(MEMBER, start, end, per_page=70, order="D") for r in p.items]
    assert descending == truth[::-1]


def test_use_history_fields_are_typed(client, simulator):
    start, end = window(simulator)
    page = client.get_use_history(MEMBER, start, end, 1, 5, "A")
    row = page.items[0]
    assert isinstance(row.tx_point, Decimal) and isinstance(row.balance, Decimal)
    assert row.tx_dt.tzinfo is KST
    assert isinstance(row.item_code, int) and isinstance(row.tx_type, int)
    assert page.total == len(simulator.world.usage_truth(MEMBER))
    assert page.per_page == 5 and page.page_num == 1


def test_use_history_date_window_filters_by_transaction_day(client, simulator):
    day = simulator.world.today() - dt.timedelta(days=10)
    page = client.get_use_history(MEMBER, day, day, per_page=1000)
    expected = [r for r in simulator.world.usage_truth(MEMBER) if r["txDT"][:8] == f"{day:%Y%m%d}"]
    assert page.total == len(expected) > 0
    assert all(r.tx_dt.date() == day for r in page.items)


def test_default_page_size_is_500(client, simulator):
    start, end = window(simulator)
    page = client.get_use_history(MEMBER, start, end)
    assert page.per_page == 500
    assert len(page.items) == min(500, page.total)


def test_payment_history_matches_truth(client, simulator):
    start, end = window(simulator)
    rows = [r for p in client.iter_payment_history(MEMBER, start, end, per_page=2) for r in p.items]
    truth = simulator.world.payments_truth(MEMBER)
    assert [r.raw for r in rows] == truth[::-1]
    assert all(isinstance(r.settle_cost, Decimal) and r.reg_dt.tzinfo is KST for r in rows)


def test_refund_history_matches_truth(client, simulator):
    rows = [r.raw for p in client.iter_refund_history(MEMBER, per_page=1) for r in p.items]
    assert rows == simulator.world.refunds_truth(MEMBER)[::-1]


def test_payment_request_then_settle_result_until_complete(client, simulator):
    before = client.get_balance(MEMBER)
    form = PaymentForm("담당자", "a@example.com", "010-1111-2222", "(주)입금자", Decimal("33000"))
    answer = client.payment_request(MEMBER, form)
    assert len(answer.settle_code) == 18
    states = [client.get_settle_result(MEMBER, answer.settle_code).settle_state for _ in range(3)]
    assert states[0] == codes.SETTLE_PENDING
    assert states[-1] == codes.SETTLE_DONE  # the simulator completes it on the third poll
    assert client.get_balance(MEMBER) == before + Decimal("33000")
    last = simulator.world.usage_truth(MEMBER)[-1]
    assert (last["txType"], last["txPoint"]) == (codes.TX_CHARGE, "33000")


def test_refund_request_then_refund_info(client, simulator):
    refundable = client.get_refundable_balance(MEMBER)
    form = RefundForm("담당자", "02-000-0000", Decimal("1000"), "국민", "123456789", "홍길동", "해지")
    answer = client.refund(MEMBER, form)
    assert len(answer.refund_code) == 18
    info = client.get_refund_info(MEMBER, answer.refund_code)
    assert info.state == codes.REFUND_PENDING and info.request_point == Decimal("1000")
    simulator.complete_refund(MEMBER, answer.refund_code)
    assert client.get_refund_info(MEMBER, answer.refund_code).state == codes.REFUND_DONE
    assert client.get_refundable_balance(MEMBER) == refundable - Decimal("1000")


def test_refund_above_refundable_balance_is_refused(client):
    too_much = client.get_refundable_balance(MEMBER).to_integral_value() + 1
    form = RefundForm("담당자", "02-000-0000", too_much, "국민", "123456789", "홍길동", "해지")
    with pytest.raises(BusinessError) as caught:
        client.refund(MEMBER, form)
    assert caught.value.code < 0 and caught.value.call == "Refund"


def test_unknown_settle_and_refund_codes_are_business_errors(client):
    with pytest.raises(BusinessError):
        client.get_settle_result(MEMBER, "000000000000000000")
    with pytest.raises(BusinessError):
        client.get_refund_info(MEMBER, "000000000000000000")
