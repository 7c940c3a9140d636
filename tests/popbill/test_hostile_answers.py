"""Doubt stays doubt: every call that reads, answered over real HTTP in every shape that is not
one of the documented ones (the simulator's answer and rewrite faults, aimed at one member).

For each (call x shape): no final state is written (no snapshot, no resolved item, no sent
request, no row, no high-water mark moved), the other member is unaffected, the operator gets
one clear line naming the call, and the next clean run completes exactly. One simulator and one
database for the module; each case cleans up after itself by running clean."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from ledger.alerts import service as alerts
from ledger.alerts.models import Alert
from ledger.balances.models import BalanceSnapshot
from ledger.members.models import Member
from ledger.metrics import process as process_metrics
from ledger.pending import sending
from ledger.pending import service as pending
from ledger.pending.models import TrackedItem
from ledger.popbill import PaymentForm, PopbillClient, PopbillError, RefundForm
from ledger.simulator import Simulator
from ledger.sync.service import sync_member
from ledger.sync.windows import SyncOptions
from tests.conftest import client_settings, empty_ledger, small_config
from tests.sync.helpers import assert_ledger_equals_truth, stored_raw

CORP, OTHER = "1234567890", "2208112345"
PAYMENT = PaymentForm("담당자", "a@example.com", "010-1234-5678", "(주)입금", Decimal("11000"))
REFUND = RefundForm("담당", "02-123-4567", Decimal("100"), "국민", "123-456", "홍길동", "해지")
OPTIONS = SyncOptions(initial_days=12)

# A field of the answer set to this raw JSON text (None: the field removed). Each case costs
# a few database commits; the list is the classes of value, one of each, not every spelling.
VALUES = {
    "missing": None, "null": "null", "nan": "NaN", "infinity": "Infinity", "huge": "1e400", "negative": "-1",
    "text": '"abc"', "huge_text": '"1e400"', "too_fine": '"0.000001"', "list": "[1]",
}  # fmt: skip
# The whole answer instead of the documented one (HTTP 200).
BODIES = {
    "error_form_200": '{"code":-99999999,"message":"일시적인 오류입니다."}',
    "empty_object": "{}",
    "html": "<html><body>점검 중</body></html>",
}  # fmt: skip
# More spellings, for GetBalance only: every single-value call goes through the same two doors
# (the envelope in the requestor, the value in ledger.popbill.models).
MORE_BODIES = {
    "error_form_text_code_200": '{"code":"-11000010","message":"토큰이 유효하지 않습니다."}',
    "array": "[]",
    "json_null": "null",
    "truncated": '{"remainPoint": 10',
}  # fmt: skip
MORE_VALUES = {"minus_infinity": "-Infinity", "nan_text": '"NaN"', "bool": "true", "object": '{"v": 1}',
               "empty_text": '""'}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    field: str | None = None  # rewrite this field of the real answer...
    value: str | None = None
    body: str | None = None  # ...or answer this instead

    def inject(self, sim, path: str, corp_num: str = "", method: str = "GET") -> None:
        if self.body is not None:
            sim.inject("answer", path=path, method=method, corp_num=corp_num, rate=1.0, status=200, body=self.body)
        else:
            sim.inject("rewrite", path=path, method=method, corp_num=corp_num, rate=1.0, edits={self.field: self.value})


def shapes(field: str, *, extra: dict | None = None, skip: tuple = (), bodies: bool = True) -> list[Shape]:
    cases = [Shape(f"{field}={name}", field, value) for name, value in VALUES.items() if name not in skip]
    cases += [Shape(f"{field}={name}", field, value) for name, value in (extra or {}).items()]
    return cases + ([Shape(name, body=body) for name, body in BODIES.items()] if bodies else [])


def params(cases: list[Shape]) -> list:
    return [pytest.param(case, id=case.name) for case in cases]


def one_line(text_: str | None, call: str) -> None:
    assert text_ and "\n" not in text_ and call in text_ and len(text_) < 700, text_


@pytest.fixture(scope="module")
def world(engine):
    empty_ledger(engine)
    _PAIRS.clear()
    with Simulator(small_config(history_days=8, usage_per_day=3, settle_after_polls=None, refund_after_polls=None)) as sim:
        settings = dataclasses.replace(client_settings(sim), pending_first_poll=0, partner_corp_num=OTHER,
                                       alert_runway_days=0, alert_threshold=Decimal("0"),
                                       partner_threshold=Decimal("0"))  # fmt: skip
        with engine.begin() as conn:
            conn.execute(Member.__table__.insert(), [{"corp_num": CORP}, {"corp_num": OTHER}])
        with PopbillClient(settings) as client:
            for corp in (CORP, OTHER):
                for kind in ("usage", "payments", "refunds"):
                    assert sync_member(engine, client, corp, kind, today=sim.world.today(), options=OPTIONS).status == "succeeded"
            yield sim, engine, client, settings
    empty_ledger(engine)


@pytest.fixture
def case(world):
    sim, engine, client, settings = world
    yield world
    sim.clear_faults()


# -- GetBalance, GetPartnerBalance --------------------------------------------------------


def _snapshots(engine, corp: str, subject: str, since: dt.datetime) -> list[Decimal]:
    with engine.connect() as conn:
        return list(conn.scalars(select(BalanceSnapshot.balance).where(
            BalanceSnapshot.corp_num == corp, BalanceSnapshot.subject == subject, BalanceSnapshot.taken_at >= since)))  # fmt: skip


@pytest.mark.parametrize("shape", params(shapes("remainPoint", extra=MORE_VALUES)
                                         + [Shape(name, body=body) for name, body in MORE_BODIES.items()]))
def test_get_balance(case, shape):
    sim, engine, client, settings = case
    before = process_metrics.DOUBTFUL_ANSWERS.labels("GetBalance")._value.get()
    shape.inject(sim, "/POPBILL_TEST/Point", CORP)
    now = dt.datetime.now(dt.UTC)
    readings = {r.subject: r for r in alerts.check_balances(engine, client, settings, now=now)}
    assert readings[CORP].balance is None
    one_line(readings[CORP].error, "GetBalance")
    assert _snapshots(engine, CORP, "member", now) == []  # no snapshot: never NaN, never -Inf
    with engine.connect() as conn:
        state = conn.scalar(select(Alert.state).where(Alert.subject == CORP, Alert.rule == "low_balance"))
    assert state == "unknown"  # never taken as ok
    assert _snapshots(engine, OTHER, "member", now) == [sim.world.balance(OTHER)]  # the other member is read
    assert process_metrics.DOUBTFUL_ANSWERS.labels("GetBalance")._value.get() > before or shape.name == "truncated"
    sim.clear_faults()
    later = dt.datetime.now(dt.UTC)
    alerts.check_balances(engine, client, settings, now=later)
    assert _snapshots(engine, CORP, "member", later) == [sim.world.balance(CORP)]


@pytest.mark.parametrize("shape", params(shapes("remainPoint", skip=("missing", "null", "too_fine", "list"))))
def test_get_partner_balance(case, shape):
    sim, engine, client, settings = case
    shape.inject(sim, "/POPBILL_TEST/PartnerPoint")
    now = dt.datetime.now(dt.UTC)
    readings = {r.subject: r for r in alerts.check_balances(engine, client, settings, now=now)}
    assert readings["partner"].balance is None
    one_line(readings["partner"].error, "GetPartnerBalance")
    assert _snapshots(engine, OTHER, "partner", now) == []  # Infinity is never stored (nor exported as -Inf)
    assert len(_snapshots(engine, CORP, "member", now)) == len(_snapshots(engine, OTHER, "member", now)) == 1
    sim.clear_faults()
    later = dt.datetime.now(dt.UTC)
    alerts.check_balances(engine, client, settings, now=later)
    assert _snapshots(engine, OTHER, "partner", later) == [Decimal(sim.world.config.partner_balance)]


# -- GetSettleResult, GetRefundInfo ---------------------------------------------------------


def _item(engine, corp: str, code: str):
    with engine.connect() as conn:
        return conn.execute(
            select(TrackedItem.__table__).join(Member, Member.id == TrackedItem.member_id)
            .where(Member.corp_num == corp, TrackedItem.code == code)
        ).one()  # fmt: skip


def _pending_pair(case, request) -> tuple[str, str]:
    """A pending item of each member, made once per call and kept pending across the cases
    (each case ends with a clean poll, which must leave it pending with no doubt)."""
    sim, engine, client, _ = case
    key = request.__name__
    if key not in _PAIRS:
        _PAIRS[key] = (request(engine, client, CORP).code, request(engine, client, OTHER).code)
    return _PAIRS[key]


_PAIRS: dict[str, tuple[str, str]] = {}


def _poll_matrix(case, shape, *, call: str, path: str, request) -> None:
    sim, engine, client, settings = case
    mine, theirs = _pending_pair(case, request)
    shape.inject(sim, path, CORP)
    outcomes = {(o.corp_num, o.code): o for o in pending.poll_due(engine, client, settings)}
    assert outcomes[CORP, mine].state == "pending" and not outcomes[CORP, mine].final
    one_line(outcomes[CORP, mine].doubt, call)
    item = _item(engine, CORP, mine)
    assert (item.state, item.resolved_at, item.doubtful_polls) == ("pending", None, 1)
    one_line(item.last_doubt, call)
    other = outcomes[OTHER, theirs]  # one bad item never halts the others: polled, and clearly answered
    assert other.state == "pending" and other.doubt is None and _item(engine, OTHER, theirs).doubtful_polls == 0
    sim.clear_faults()
    clean = {(o.corp_num, o.code): o for o in pending.poll_due(engine, client, settings)}[CORP, mine]
    assert (clean.state, clean.doubt) == ("pending", None) and _item(engine, CORP, mine).doubtful_polls == 0


def _settle(engine, client, corp):
    return sending.request_payment(engine, client, corp, PAYMENT, force=True)


def _refund(engine, client, corp):
    return sending.request_refund(engine, client, corp, REFUND, force=True)


@pytest.mark.parametrize("shape", params(shapes("settleState", extra={"unknown_code": "99"}, skip=("too_fine",))
                                         + [Shape("regDT=short", "regDT", '"2026111"'),
                                            Shape("settleCost=1E+30", "settleCost", '"1E+30"')]))  # fmt: skip
def test_get_settle_result(case, shape):
    _poll_matrix(case, shape, call="GetSettleResult", path="/Payment/", request=_settle)


@pytest.mark.parametrize("shape", params(shapes("state", extra={"unknown_code": "99"}, skip=("too_fine",))
                                         + [Shape("reqDT=short", "reqDT", '"202611"')]))  # fmt: skip
def test_get_refund_info(case, shape):
    _poll_matrix(case, shape, call="GetRefundInfo", path="/Refund/", request=_refund)


def test_after_all_that_doubt_the_items_settle_clearly(case):
    """The items polled through every bad shape above end as Popbill says, when it says so."""
    sim, engine, client, settings = case
    for request, complete in ((_settle, sim.complete_payment), (_refund, sim.complete_refund)):
        mine, theirs = _pending_pair(case, request)
        complete(CORP, mine)
        complete(OTHER, theirs)
    pairs = {pair for request in (_settle, _refund) for pair in zip((CORP, OTHER), _pending_pair(case, request), strict=True)}
    states = {(o.corp_num, o.code): o.state for o in pending.poll_due(engine, client, settings)}
    assert {key: states.get(key) for key in pairs} == {key: "done" for key in pairs}


# -- the three histories -------------------------------------------------------------------


def _state(engine, corp: str, kind: str):
    with engine.connect() as conn:
        return conn.execute(text("SELECT high_water, last_full_pass_at, last_success_at FROM sync_states s "
                                 "JOIN members m ON m.id = s.member_id WHERE m.corp_num = :c AND s.kind = :k"),
                            {"c": corp, "k": kind}).one()  # fmt: skip


PAGE = dict(extra={"float_total": "1.5"}, skip=("too_fine", "huge_text", "list"))
HISTORIES = [("usage", "/UseHistory", "GetUseHistory"), ("payments", "/PaymentHistory", "GetPaymentHistory"),
             ("refunds", "/RefundHistory", "GetRefundHistory")]  # fmt: skip
PAGE_SHAPES = (shapes("total", **PAGE)
               + [Shape("list=missing", "list", None), Shape("list=null", "list", "null"),
                  Shape("list=text", "list", '"rows"'), Shape("list=object", "list", '{"0": {}}'),
                  Shape("pageCount=missing", "pageCount", None), Shape("perPage=text", "perPage", '"many"')])  # fmt: skip
# The envelope is one check for the three histories: every shape for the use history, the
# commonest for the other two (their sync paths differ, their envelope does not).
FEW = ("error_form_200", "empty_object", "list=missing", "total=missing", "total=nan")
HISTORY_CASES = [
    pytest.param(kind, path, call, shape, id=f"{kind}-{shape.name}")
    for kind, path, call in HISTORIES for shape in PAGE_SHAPES if kind == "usage" or shape.name in FEW
]


@pytest.mark.parametrize(("kind", "path", "call", "shape"), HISTORY_CASES)
def test_history_windows(case, kind, path, call, shape):
    sim, engine, client, settings = case
    sim.advance_days(1)  # a day upstream the ledger has not seen: a mark to not advance
    today = sim.world.today()
    state, rows = _state(engine, CORP, kind), len(stored_raw(engine, CORP, kind))
    shape.inject(sim, path, CORP)
    failed = sync_member(engine, client, CORP, kind, today=today, options=OPTIONS)
    assert failed.status == "failed"
    one_line(failed.error, call)
    assert _state(engine, CORP, kind)[:2] == state[:2] and len(stored_raw(engine, CORP, kind)) == rows
    assert sync_member(engine, client, OTHER, kind, today=today, options=OPTIONS).status == "succeeded"
    sim.clear_faults()
    assert sync_member(engine, client, CORP, kind, today=today, options=OPTIONS).status == "succeeded"
    assert_ledger_equals_truth(engine, sim, [CORP, OTHER], kinds=(kind,))
    if kind != "refunds":
        assert _state(engine, CORP, kind).high_water == today


# -- the token ------------------------------------------------------------------------------


TOKEN_SHAPES = [Shape(f"session_token={n}", "session_token", v) for n, v in
                (("missing", None), ("null", "null"), ("number", "123"), ("empty", '""'), ("list", '["t"]'))]
TOKEN_SHAPES += [Shape(f"expiration={n}", "expiration", v) for n, v in
                 (("missing", None), ("null", "null"), ("text", '"abc"'), ("no_zone", '"2026-11-25T20:51:30"'),
                  ("number", "1764000000"), ("past", '"2000-01-01T00:00:00.000Z"'))]  # fmt: skip
TOKEN_SHAPES += [Shape("scope=text", "scope", '"member"'), Shape("serviceID=number", "serviceID", "7")]
TOKEN_SHAPES += [Shape(name, body=body) for name, body in BODIES.items()]


@pytest.mark.parametrize("shape", [pytest.param(s, id=s.name) for s in TOKEN_SHAPES])
def test_token(case, shape):
    sim, engine, _, settings = case
    shape.inject(sim, "/POPBILL_TEST/Token", CORP, method="POST")
    now = dt.datetime.now(dt.UTC)
    with PopbillClient(settings) as fresh:  # no token cached yet
        readings = {r.subject: r for r in alerts.check_balances(engine, fresh, settings, now=now)}
    assert readings[CORP].balance is None and _snapshots(engine, CORP, "member", now) == []
    one_line(readings[CORP].error, "Token")
    if shape.name == "expiration=past":
        assert "POPBILL_USE_LOCAL_TIME" in readings[CORP].error
    assert readings[OTHER].balance == sim.world.balance(OTHER)
    sim.clear_faults()
    with PopbillClient(settings) as fresh:
        assert fresh.get_balance(CORP) == sim.world.balance(CORP)


# -- GetRefundableBalance (last: the refunds it asks for stay pending) ---------------------


def _refunds_sent(sim, corp: str) -> int:
    return len([r for r in sim.requests("/Refund", method="POST") if r.corp_num == corp])


@pytest.mark.parametrize("shape", params(shapes("refundableBalance", skip=("null", "too_fine", "list"))))
def test_get_refundable_balance(case, shape):
    sim, engine, client, settings = case
    shape.inject(sim, "/RefundPoint", CORP)
    sent, items = _refunds_sent(sim, CORP), _items(engine, CORP)
    with pytest.raises(PopbillError) as refused:
        sending.request_refund(engine, client, CORP, REFUND, force=True)
    one_line(str(refused.value), "GetRefundableBalance")
    assert _refunds_sent(sim, CORP) == sent and _items(engine, CORP) == items  # 1e400 defeats no guard
    assert sending.request_refund(engine, client, OTHER, REFUND, force=True).code is not None
    sim.clear_faults()
    assert sending.request_refund(engine, client, CORP, REFUND, force=True).code is not None


def _items(engine, corp: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM tracked_items t JOIN members m ON m.id = t.member_id "
                                "WHERE m.corp_num = :c"), {"c": corp})  # fmt: skip
