"""A member's monthly statement: opening balance, what came in (points credited beside the won
paid), what went out by service, closing balance. A closed month's statement is the one frozen
when it was closed; the month after a closed one carries a prior-period adjustment for whatever
changed in it since."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from sqlalchemy import Connection, Engine, text

from ledger.errors import UserInputError
from ledger.history.codes import ServiceNames, load_service_names

ZERO = Decimal(0)
# Lines that only describe (a deposit's detail, the count of open findings, what changed in an
# earlier month): not figures a close freezes or compares.
_DESCRIPTIVE = ("deposit:", "prior_period:", "open_discrepancies")


@dataclasses.dataclass(frozen=True)
class Line:
    key: str
    label_en: str
    label_ko: str
    amount: Decimal | int  # points, or a count
    won: Decimal | None = None  # the money paid (settleCost), where the line has one
    status: str | None = None  # settled, pending or cancelled, for deposit lines

    @property
    def is_figure(self) -> bool:
        return not self.key.startswith(_DESCRIPTIVE)

    def frozen(self) -> dict:
        return {"key": self.key, "label_en": self.label_en, "label_ko": self.label_ko, "amount": str(self.amount),
                "won": None if self.won is None else str(self.won), "status": self.status}  # fmt: skip

    @classmethod
    def thawed(cls, data: dict) -> Line:
        won = data.get("won")
        return cls(data["key"], data["label_en"], data["label_ko"], Decimal(data["amount"]),
                   None if won is None else Decimal(won), data.get("status"))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Closed:
    by: str
    at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Statement:
    corp_num: str
    member_name: str | None
    month: dt.date
    lines: tuple[Line, ...]
    closed: Closed | None = None  # set when these are the frozen figures of a closed month

    def amount(self, key: str, default=None) -> Decimal | int:
        found = next((line.amount for line in self.lines if line.key == key), default)
        if found is None:
            raise KeyError(key)
        return found

    def won(self, key: str) -> Decimal | None:
        return next((line.won for line in self.lines if line.key == key), None)

    @property
    def balanced(self) -> bool:
        """opening + prior-period adjustment + deposits + bonus - usage - refunds + adjustments
        + unclassified == closing."""
        a = lambda key: self.amount(key, ZERO)  # noqa: E731
        moved = a("deposits") + a("bonus_credits") - a("usage_points") - a("refunds") + a("adjustments")
        return a("opening_balance") + a("prior_period_adjustment") + moved + a("unclassified_points") == a(
            "closing_balance"
        )

    def figures(self) -> dict[str, Decimal | None]:
        """The comparable figures: points by key, and won as key + ':won'."""
        out: dict[str, Decimal | None] = {}
        for line in self.lines:
            if line.is_figure:
                out[line.key] = Decimal(line.amount)
                if line.won is not None:
                    out[f"{line.key}:won"] = line.won
        return out


class StatementError(UserInputError):
    pass


def previous_month(month: dt.date) -> dt.date:
    return (month - dt.timedelta(days=1)).replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _member(conn: Connection, corp_num: str):
    member = conn.execute(text("SELECT id, name FROM members WHERE corp_num = :c"), {"c": corp_num}).one_or_none()
    if member is None:
        raise StatementError(f"--member: {corp_num} is not a member")
    return member


def close_in_force(conn: Connection, member_id: int, month: dt.date):
    return conn.execute(
        text("SELECT figures, closed_by, closed_at FROM month_closes WHERE member_id = :m AND month = :month "
             "AND reopened_at IS NULL"), {"m": member_id, "month": month},
    ).one_or_none()  # fmt: skip


def _frozen(corp_num: str, name: str | None, month: dt.date, close) -> Statement:
    lines = tuple(Line.thawed(item) for item in close.figures["lines"])
    return Statement(corp_num, name, month, lines, Closed(close.closed_by, close.closed_at))


def _deposit_lines(conn: Connection, corp_num: str, month: dt.date) -> tuple[dict, list[Line]]:
    deposits = conn.execute(
        text("SELECT reg_dt, state_dt, status, won, points FROM v_deposits WHERE corp_num = :c AND month = :m "
             "ORDER BY reg_dt, state_dt"), {"c": corp_num, "m": month},
    ).all()  # fmt: skip
    totals = {status: [ZERO, ZERO] for status in ("settled", "pending", "cancelled", "unknown")}
    details = []
    for n, d in enumerate(deposits, 1):
        totals[d.status][0] += d.points or ZERO
        totals[d.status][1] += d.won or ZERO
        when = f"{d.reg_dt:%Y-%m-%d %H:%M:%S}"
        details.append(Line(f"deposit:{n}", f"Deposit requested {when}", f"충전 신청 {when}", d.points or ZERO,
                            d.won or ZERO, d.status))  # fmt: skip
    return totals, details


def live_statement(conn: Connection, corp_num: str, month: dt.date, names: ServiceNames | None = None) -> Statement:
    """The statement as the ledger stands now, whether or not the month is closed."""
    month = month.replace(day=1)
    names = names or load_service_names(conn)
    member = _member(conn, corp_num)
    row = conn.execute(
        text("SELECT * FROM v_monthly_statements WHERE corp_num = :c AND month = :m"), {"c": corp_num, "m": month}
    ).one_or_none()
    services = conn.execute(
        text("SELECT item_code, transactions, points FROM v_monthly_usage_by_service "
             "WHERE corp_num = :c AND month = :m ORDER BY item_code"), {"c": corp_num, "m": month},
    ).all()  # fmt: skip
    if row is None:  # a month with no transactions: the balance carries over unchanged
        before = conn.execute(
            text("SELECT closing_balance FROM v_monthly_statements WHERE corp_num = :c AND month < :m "
                 "ORDER BY month DESC LIMIT 1"), {"c": corp_num, "m": month},
        ).scalar()  # fmt: skip
        carried = before if before is not None else ZERO
        opens = conn.execute(
            text("SELECT count(*) FROM discrepancies WHERE member_id = :m AND status = 'open'"), {"m": member.id}
        ).scalar()
        values = {"opening_balance": carried, "deposits": ZERO, "bonus_credits": ZERO, "usage_points": ZERO,
                  "refunds": ZERO, "adjustments": ZERO, "unclassified_points": ZERO, "closing_balance": carried,
                  "transactions": 0, "open_discrepancies": opens}  # fmt: skip
    else:
        values = dict(row._mapping)
    totals, details = _deposit_lines(conn, corp_num, month)

    opening = values["opening_balance"]
    adjustment_lines: list[Line] = []
    previous = previous_month(month)
    previous_close = close_in_force(conn, member.id, previous)
    if previous_close is not None:
        # The books carry the frozen closing balance; what changed since is an adjustment here.
        booked = _frozen(corp_num, member.name, previous, previous_close)
        live_previous = live_statement(conn, corp_num, previous, names)
        booked_opening = booked.amount("closing_balance")
        if opening is not None and opening != booked_opening:
            adjustment_lines.append(Line("prior_period_adjustment", f"Prior-period adjustment ({previous:%Y-%m})",
                                         f"전기 수정 ({previous:%Y-%m})", opening - booked_opening))  # fmt: skip
        opening = booked_opening
        now_figures, then_figures = live_previous.figures(), booked.figures()
        for key in sorted(set(now_figures) | set(then_figures)):
            change = (now_figures.get(key) or ZERO) - (then_figures.get(key) or ZERO)
            if change:
                adjustment_lines.append(Line(f"prior_period:{previous:%Y-%m}:{key}", f"  changed in {previous:%Y-%m}: {key}",
                                             f"  {previous:%Y-%m} 변경: {key}", change))  # fmt: skip

    lines = [Line("opening_balance", "Opening balance", "기초잔액", opening), *adjustment_lines,
             Line("deposits", "Deposits (points credited; won paid)", "충전 (적립 포인트; 결제금액 원)",
                  values["deposits"], totals["settled"][1], "settled"),
             Line("bonus_credits", "Bonus points (not paid money)", "보너스 포인트 (결제 아님)", values["bonus_credits"])]  # fmt: skip
    for service in services:
        lines.append(Line(f"usage:{service.item_code}", f"Usage [{service.item_code}] {names.en(service.item_code)}",
                          f"사용 [{service.item_code}] {names.ko(service.item_code)}", service.points))  # fmt: skip
    lines += [Line("usage_points", "Usage, total", "사용 합계", values["usage_points"]),
              Line("refunds", "Refunds", "환불", values["refunds"]),
              Line("adjustments", "Adjustments", "조정", values["adjustments"])]  # fmt: skip
    if values.get("unclassified_points"):
        lines.append(
            Line("unclassified_points", "Unclassified (type not in tx_types)", "미분류", values["unclassified_points"])
        )
    lines += [Line("closing_balance", "Closing balance", "기말잔액", values["closing_balance"]),
              Line("pending_deposits", "Deposits still pending (not credited)", "입금대기 충전 (미적립)",
                   totals["pending"][0], totals["pending"][1], "pending"),
              Line("cancelled_deposits", "Deposits cancelled", "취소된 충전", totals["cancelled"][0],
                   totals["cancelled"][1], "cancelled"),
              *details,
              Line("transactions", "Transactions", "거래 건수", values["transactions"]),
              Line("open_discrepancies", "Open discrepancies", "미해결 불일치", values["open_discrepancies"])]  # fmt: skip
    return Statement(corp_num, member.name, month, tuple(lines))


def monthly_statement(engine: Engine, corp_num: str, month: dt.date) -> Statement:
    """The statement to hand over: the frozen one when the month is closed, else the live one."""
    month = month.replace(day=1)
    with engine.connect() as conn:
        member = _member(conn, corp_num)
        close = close_in_force(conn, member.id, month)
        if close is not None:
            return _frozen(corp_num, member.name, month, close)
        return live_statement(conn, corp_num, month)
