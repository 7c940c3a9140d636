"""PopbillClient: the sixteen point-management calls, validated, typed and retried.

Parameters are Popbill's own (CorpNum, SDate, Order, ...) in snake_case, with Popbill's defaults.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import quote, urlencode

from ledger.history.screening import RowLimits
from ledger.popbill import validation as check
from ledger.popbill.models import (
    ChargeInfo,
    Page,
    PaymentForm,
    PaymentHistory,
    PaymentResponse,
    RefundForm,
    RefundHistory,
    RefundResponse,
    UseHistory,
    balance_from_answer,
    url_from_answer,
)
from ledger.popbill.paging import iter_pages
from ledger.popbill.requestor import CallObserver, Requestor
from ledger.settings import Settings

DateLike = str | dt.date


def _query(path: str, params: dict[str, object]) -> str:
    present = {k: v for k, v in params.items() if v is not None}
    return f"{path}?{urlencode(present)}" if present else path


class PopbillClient:
    """Thread-safe: one instance may serve every Celery thread."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        requestor: Requestor | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.requestor = requestor or Requestor(self.settings, observer=observer)

    def limits(self) -> RowLimits:
        """What an answer's numbers and dates may be (LEDGER_ROW_*), as for history rows; the
        latest plausible date moves with today, by the clock this client signs with."""
        return RowLimits.for_sync(self.settings, self.requestor.clock.now().date() + dt.timedelta(days=1))

    @property
    def stats(self):
        return self.requestor.stats

    def close(self) -> None:
        self.requestor.close()

    def __enter__(self) -> PopbillClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PopbillClient(link_id={self.settings.link_id!r}, api={self.requestor.api_url!r})"

    # -- Linkhub auth host -------------------------------------------------------------

    def get_server_time(self) -> dt.datetime:
        """Linkhub's clock now (GET /Time), as an aware UTC datetime."""
        return self.requestor.server_time()

    def today(self) -> dt.date:
        """Today in Korea by the clock this client signs with (POPBILL_USE_LOCAL_TIME)."""
        return self.requestor.clock.today_kst()

    def get_balance(self, corp_num: str) -> Decimal:
        """GetBalance: the member's remaining points."""
        corp = check.corp_num(corp_num, "GetBalance")
        limits = self.limits()
        return self.requestor.call("GetBalance", "GET", "/Point", corp, host="auth",
                                   parse=lambda a: balance_from_answer(a, "remainPoint", limits))  # fmt: skip

    def get_partner_balance(self, corp_num: str) -> Decimal:
        """GetPartnerBalance: the partner's remaining points."""
        corp = check.corp_num(corp_num, "GetPartnerBalance")
        limits = self.limits()
        return self.requestor.call("GetPartnerBalance", "GET", "/PartnerPoint", corp, host="auth",
                                   parse=lambda a: balance_from_answer(a, "remainPoint", limits))  # fmt: skip

    def get_partner_url(self, corp_num: str, togo: str = "CHRG") -> str:
        """GetPartnerURL: the partner's point-charge popup (valid 30 s)."""
        corp = check.corp_num(corp_num, "GetPartnerURL")
        check.togo(togo, "GetPartnerURL")
        return self.requestor.call("GetPartnerURL", "GET", f"/URL?TG={togo}", corp, host="auth", parse=url_from_answer)

    # -- Popbill API host --------------------------------------------------------------

    def get_unit_cost(self, corp_num: str, user_id: str | None = None, service_type: str | None = None) -> Decimal:
        """GetUnitCost: points charged per account-holder check (ServiceType 성명 or 실명)."""
        call = "GetUnitCost"
        corp = check.corp_num(corp_num, call)
        st = check.service_type(service_type, required=True, call=call)
        uid = check.user_id(user_id, call)
        limits = self.limits()
        return self.requestor.call(
            call, "GET", f"/EasyFin/AccountCheck/UnitCost?serviceType={quote(st)}", corp, user_id=uid,
            parse=lambda a: balance_from_answer(a, "unitCost", limits),
        )  # fmt: skip

    def get_charge_info(self, corp_num: str, user_id: str | None = None, service_type: str | None = None) -> ChargeInfo:
        """GetChargeInfo: unit cost, charge method and rate system of the account-check service."""
        call = "GetChargeInfo"
        corp = check.corp_num(corp_num, call)
        st = check.service_type(service_type, required=False, call=call)
        uid = check.user_id(user_id, call)
        path = "/EasyFin/AccountCheck/ChargeInfo" + (f"?serviceType={quote(st)}" if st else "")
        limits = self.limits()
        return self.requestor.call(call, "GET", path, corp, user_id=uid,
                                   parse=lambda a: ChargeInfo.from_answer(a, limits))  # fmt: skip

    def _member_url(self, call: str, corp_num: str, user_id: str | None, target: str) -> str:
        corp = check.corp_num(corp_num, call)
        uid = check.user_id(user_id, call)
        return self.requestor.call(call, "GET", f"/Member?TG={target}", corp, user_id=uid, parse=url_from_answer)

    def get_charge_url(self, corp_num: str, user_id: str | None = None) -> str:
        """GetChargeURL: the member's point-charge popup (valid 30 s)."""
        return self._member_url("GetChargeURL", corp_num, user_id, "CHRG")

    def get_payment_url(self, corp_num: str, user_id: str | None = None) -> str:
        """GetPaymentURL: the member's payment-history popup (valid 30 s)."""
        return self._member_url("GetPaymentURL", corp_num, user_id, "PAYMENT")

    def get_use_history_url(self, corp_num: str, user_id: str | None = None) -> str:
        """GetUseHistoryURL: the member's use-history popup (valid 30 s)."""
        return self._member_url("GetUseHistoryURL", corp_num, user_id, "USEHISTORY")

    def payment_request(self, corp_num: str, payment_form: PaymentForm, user_id: str | None = None) -> PaymentResponse:
        """PaymentRequest: ask for a bank-transfer deposit. Not idempotent: never retried once sent."""
        call = "PaymentRequest"
        corp = check.corp_num(corp_num, call)
        form = check.payment_form(payment_form, call, maximum=self.settings.money_max_won)
        uid = check.user_id(user_id, call)
        return self.requestor.call(
            call, "POST", "/Payment", corp, user_id=uid, payload=form.to_wire(), idempotent=False,
            parse=PaymentResponse.from_answer,
        )  # fmt: skip

    def get_settle_result(self, corp_num: str, settle_code: str, user_id: str | None = None) -> PaymentHistory:
        """GetSettleResult: one deposit request by its settle code."""
        call = "GetSettleResult"
        corp = check.corp_num(corp_num, call)
        code = check.code("SettleCode", settle_code, call)
        uid = check.user_id(user_id, call)
        limits = self.limits()
        return self.requestor.call(call, "GET", f"/Payment/{quote(code)}", corp, user_id=uid,
                                   parse=lambda a: PaymentHistory.from_answer(a, limits, with_state=True))  # fmt: skip

    def get_payment_history(
        self,
        corp_num: str,
        s_date: DateLike,
        e_date: DateLike,
        page: int | None = None,
        per_page: int | None = None,
        user_id: str | None = None,
        *,
        typed: bool = True,
    ) -> Page[PaymentHistory]:
        """GetPaymentHistory: one page of payments registered between s_date and e_date."""
        call = "GetPaymentHistory"
        corp = check.corp_num(corp_num, call)
        sd, ed = check.date_range(s_date, e_date, call)
        params = {"SDate": sd, "EDate": ed, "Page": check.page(page, call), "PerPage": check.per_page(per_page, call)}
        uid = check.user_id(user_id, call)
        return self._page(call, _query("/PaymentHistory", params), corp, uid, PaymentHistory if typed else None)

    def get_use_history(
        self,
        corp_num: str,
        s_date: DateLike,
        e_date: DateLike,
        page: int | None = None,
        per_page: int | None = None,
        order: str | None = None,
        user_id: str | None = None,
        *,
        typed: bool = True,
    ) -> Page[UseHistory]:
        """GetUseHistory: one page of point transactions between s_date and e_date."""
        call = "GetUseHistory"
        corp = check.corp_num(corp_num, call)
        sd, ed = check.date_range(s_date, e_date, call)
        params = {
            "SDate": sd,
            "EDate": ed,
            "Page": check.page(page, call),
            "PerPage": check.per_page(per_page, call),
            "Order": check.order(order, call),
        }
        uid = check.user_id(user_id, call)
        return self._page(call, _query("/UseHistory", params), corp, uid, UseHistory if typed else None)

    def refund(self, corp_num: str, refund_form: RefundForm, user_id: str | None = None) -> RefundResponse:
        """Refund: ask for points back. Not idempotent: never retried once sent."""
        call = "Refund"
        corp = check.corp_num(corp_num, call)
        form = check.refund_form(refund_form, call, maximum=self.settings.money_max_won)
        uid = check.user_id(user_id, call)
        return self.requestor.call(
            call, "POST", "/Refund", corp, user_id=uid, payload=form.to_wire(), idempotent=False,
            parse=RefundResponse.from_answer,
        )  # fmt: skip

    def get_refund_history(
        self,
        corp_num: str,
        page: int | None = None,
        per_page: int | None = None,
        user_id: str | None = None,
        *,
        typed: bool = True,
    ) -> Page[RefundHistory]:
        """GetRefundHistory: one page of refund requests, newest first."""
        call = "GetRefundHistory"
        corp = check.corp_num(corp_num, call)
        params = {"Page": check.page(page, call), "PerPage": check.per_page(per_page, call)}
        uid = check.user_id(user_id, call)
        return self._page(call, _query("/RefundHistory", params), corp, uid, RefundHistory if typed else None)

    def get_refund_info(self, corp_num: str, refund_code: str, user_id: str | None = None) -> RefundHistory:
        """GetRefundInfo: one refund request by its refund code."""
        call = "GetRefundInfo"
        corp = check.corp_num(corp_num, call)
        code = check.code("RefundCode", refund_code, call)
        uid = check.user_id(user_id, call)
        limits = self.limits()
        return self.requestor.call(call, "GET", f"/Refund/{quote(code)}", corp, user_id=uid,
                                   parse=lambda a: RefundHistory.from_answer(a, limits, with_state=True))  # fmt: skip

    def get_refundable_balance(self, corp_num: str, user_id: str | None = None) -> Decimal:
        """GetRefundableBalance: points that can be refunded (bonus points excluded)."""
        call = "GetRefundableBalance"
        corp = check.corp_num(corp_num, call)
        uid = check.user_id(user_id, call)
        limits = self.limits()
        return self.requestor.call(call, "GET", "/RefundPoint", corp, user_id=uid,
                                   parse=lambda a: balance_from_answer(a, "refundableBalance", limits))  # fmt: skip

    def _page(self, call: str, path: str, corp: str, uid: str | None, item_type) -> Page:
        """One page, its envelope checked (and each row too when typed: see Page.from_answer)."""
        limits = self.limits()
        return self.requestor.call(call, "GET", path, corp, user_id=uid,
                                   parse=lambda a: Page.from_answer(a, item_type, limits))  # fmt: skip

    # -- Paging ------------------------------------------------------------------------
    # typed=False yields the rows as decoded from the wire (dicts), for a caller that checks
    # each row before trusting it (the sync: ledger.history.screening).

    def iter_use_history(
        self,
        corp_num: str,
        s_date: DateLike,
        e_date: DateLike,
        *,
        per_page: int = 1000,
        order: str = "A",
        user_id: str | None = None,
        typed: bool = True,
    ) -> Iterator[Page[UseHistory]]:
        """Every page of the window, oldest first by default so that new rows land on the last page."""
        return self._pages(
            lambda p: self.get_use_history(corp_num, s_date, e_date, p, per_page, order, user_id, typed=typed),
            "GetUseHistory",
        )

    def iter_payment_history(
        self,
        corp_num: str,
        s_date: DateLike,
        e_date: DateLike,
        *,
        per_page: int = 1000,
        user_id: str | None = None,
        typed: bool = True,
    ) -> Iterator[Page[PaymentHistory]]:
        return self._pages(
            lambda p: self.get_payment_history(corp_num, s_date, e_date, p, per_page, user_id, typed=typed),
            "GetPaymentHistory",
        )

    def iter_refund_history(
        self, corp_num: str, *, per_page: int = 1000, user_id: str | None = None, typed: bool = True
    ) -> Iterator[Page[RefundHistory]]:
        return self._pages(
            lambda p: self.get_refund_history(corp_num, p, per_page, user_id, typed=typed), "GetRefundHistory"
        )

    def _pages(self, fetch, call: str) -> Iterator[Page]:
        return iter_pages(fetch, call=call, max_pages=self.settings.max_pages)
