"""The official Popbill SDK, pointed at the simulator, gets the same answers as our client.

This proves the simulator speaks Popbill's protocol (signing, headers, paths, fields), not
merely ours. The SDK's services are process-wide singletons that cache a connection and
tokens, so one simulator serves this whole module and the caches are reset per test.
"""

from __future__ import annotations

import datetime as dt
import http.client
from decimal import Decimal

import pytest

linkhub = pytest.importorskip("linkhub")
popbill_sdk = pytest.importorskip("popbill")

from ledger.popbill import PaymentForm, PopbillClient, RefundForm  # noqa: E402
from ledger.settings import SANDBOX_LINK_ID, SANDBOX_SECRET_KEY  # noqa: E402
from ledger.simulator import Simulator  # noqa: E402
from tests.conftest import MEMBER, client_settings, small_config  # noqa: E402


@pytest.fixture(scope="module")
def sim():
    with Simulator(small_config(seed=11, settle_after_polls=None, refund_after_polls=None)) as simulator:
        yield simulator


@pytest.fixture
def ours(sim):
    with PopbillClient(client_settings(sim)) as client:
        yield client


@pytest.fixture
def sdk(sim, monkeypatch):
    """The SDK's AccountCheckService, which carries all sixteen calls, aimed at the simulator."""
    linkhub.authURL(sim.url)
    # The SDK hard-codes HTTPS hosts; give it a plain connection to the simulator instead.
    monkeypatch.setattr(
        popbill_sdk.base.httpclient,
        "HTTPSConnection",
        lambda *a, **k: http.client.HTTPConnection("127.0.0.1", sim.port),
    )
    service = popbill_sdk.AccountCheckService(SANDBOX_LINK_ID, SANDBOX_SECRET_KEY)
    service.IsTest = True
    service.IPRestrictOnOff = True
    service._PopbillBase__conn = None
    service._PopbillBase__tokenCache = {}
    yield service
    service._PopbillBase__conn = None


def as_dict(obj):
    if isinstance(obj, list):
        return [as_dict(o) for o in obj]
    if hasattr(obj, "__dict__"):
        return {k: as_dict(v) for k, v in vars(obj).items()}
    return obj


def dates(sim):
    today = sim.world.today()
    return (today - dt.timedelta(days=100)).strftime("%Y%m%d"), today.strftime("%Y%m%d")


def test_balances(sdk, ours):
    assert Decimal(str(sdk.getBalance(MEMBER))) == ours.get_balance(MEMBER)
    assert Decimal(str(sdk.getPartnerBalance(MEMBER))) == ours.get_partner_balance(MEMBER)
    assert Decimal(str(sdk.getRefundableBalance(MEMBER))) == ours.get_refundable_balance(MEMBER)


def test_unit_cost_and_charge_info(sdk, ours):
    for service_type in ("성명", "실명"):
        assert Decimal(str(sdk.getUnitCost(MEMBER, None, service_type))) == ours.get_unit_cost(
            MEMBER, None, service_type
        )
        assert (
            as_dict(sdk.getChargeInfo(MEMBER, None, service_type))
            == ours.get_charge_info(MEMBER, None, service_type).raw
        )


def test_popup_urls(sdk, ours, sim):
    pairs = [
        (sdk.getChargeURL(MEMBER, "user01"), ours.get_charge_url(MEMBER, "user01")),
        (sdk.getPaymentURL(MEMBER), ours.get_payment_url(MEMBER)),
        (sdk.getUseHistoryURL(MEMBER), ours.get_use_history_url(MEMBER)),
        (sdk.getPartnerURL(MEMBER, "CHRG"), ours.get_partner_url(MEMBER, "CHRG")),
    ]
    for theirs, mine in pairs:
        assert theirs.rsplit("/", 1)[0] == mine.rsplit("/", 1)[0]  # same kind of page, each with its own key


def test_use_history(sdk, ours, sim):
    s_date, e_date = dates(sim)
    for order in ("A", "D"):
        theirs = sdk.getUseHistory(MEMBER, s_date, e_date, 2, 50, order)
        mine = ours.get_use_history(MEMBER, s_date, e_date, 2, 50, order)
        assert as_dict(theirs.list) == [r.raw for r in mine.items]
        assert (theirs.total, theirs.perPage, theirs.pageNum, theirs.pageCount) == (
            mine.total,
            mine.per_page,
            mine.page_num,
            mine.page_count,
        )


def test_payment_and_refund_history(sdk, ours, sim):
    s_date, e_date = dates(sim)
    theirs = sdk.getPaymentHistory(MEMBER, s_date, e_date, 1, 100)
    assert as_dict(theirs.list) == [r.raw for r in ours.get_payment_history(MEMBER, s_date, e_date, 1, 100).items]
    theirs = sdk.getRefundHistory(MEMBER, 1, 100)
    assert as_dict(theirs.list) == [r.raw for r in ours.get_refund_history(MEMBER, 1, 100).items]


def test_payment_request_and_settle_result(sdk, ours):
    form = popbill_sdk.PaymentForm(
        settlerName="담당자",
        settlerEmail="a@example.com",
        notifyHP="010-1111-2222",
        paymentName="입금자",
        settleCost="11000",
    )
    theirs = sdk.paymentRequest(MEMBER, form)
    mine = ours.payment_request(
        MEMBER, PaymentForm("담당자", "a@example.com", "010-1111-2222", "입금자", Decimal("11000"))
    )
    assert theirs.code == mine.code == 1 and len(theirs.settleCode) == len(mine.settle_code) == 18
    # Each side reads both deposits: the same answers.
    for code in (mine.settle_code, theirs.settleCode):
        assert as_dict(sdk.getSettleResult(MEMBER, code)) == ours.get_settle_result(MEMBER, code).raw


def test_refund_and_refund_info(sdk, ours):
    form = popbill_sdk.RefundForm(
        ContactName="담당자",
        TEL="02-000-0000",
        RequestPoint="100",
        AccountBank="국민",
        AccountNum="123456",
        AccountName="홍길동",
        Reason="테스트",
    )  # the SDK's example capitalisation
    theirs = sdk.refund(MEMBER, form)
    mine = ours.refund(
        MEMBER, RefundForm("담당자", "02-000-0000", Decimal("100"), "국민", "123456", "홍길동", "테스트")
    )
    assert theirs.code == mine.code == 1
    assert as_dict(sdk.getRefundInfo(MEMBER, mine.refund_code)) == ours.get_refund_info(MEMBER, mine.refund_code).raw
    assert as_dict(sdk.getRefundInfo(MEMBER, theirs.refundCode)) == ours.get_refund_info(MEMBER, theirs.refundCode).raw


def test_business_errors_carry_the_same_code(sdk, ours):
    with pytest.raises(popbill_sdk.PopbillException) as theirs:
        sdk.getSettleResult(MEMBER, "000000000000000000")
    from ledger.popbill import BusinessError

    with pytest.raises(BusinessError) as mine:
        ours.get_settle_result(MEMBER, "000000000000000000")
    assert theirs.value.code == mine.value.code < 0
