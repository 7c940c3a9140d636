"""A member's monthly statement: opening balance, what came in (points credited beside the won
paid), what went out by service, closing balance. A closed month's statement is the one frozen
when it was closed; the month after a closed one carries a prior-period adjustment for whatever
changed in it since."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from sqlalchemy import Connection, Engine, Row, text

from ledger.errors import UserInputError
from ledger.history.codes import ServiceNames, load_service_names
from ledger.kst import today_kst
from ledger.reports.labels import figure_ko

KST_SQL = "'Asia/Seoul'"

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
    def difference(self) -> Decimal:
        """closing - (opening + prior-period adjustment + deposits + bonus - usage - refunds
        + adjustments + unclassified): zero when the statement adds up."""
        a = lambda key: Decimal(self.amount(key, ZERO) or ZERO)  # noqa: E731
        moved = a("deposits") + a("bonus_credits") - a("usage_points") - a("refunds") + a("adjustments")
        return a("closing_balance") - (a("opening_balance") + a("prior_period_adjustment") + moved
                                       + a("unclassified_points"))  # fmt: skip

    @property
    def balanced(self) -> bool:
        return self.difference == 0

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


def month_span(month: dt.date) -> str:
    """'2026-11-01 – 2026-11-30'."""
    return f"{month:%Y-%m-%d} – {next_month(month) - dt.timedelta(days=1):%Y-%m-%d}"


@dataclasses.dataclass(frozen=True)
class Member:
    id: int
    corp_num: str
    name: str | None


def _member(conn: Connection, corp_num: str) -> Member:
    member = conn.execute(text("SELECT id, corp_num, name FROM members WHERE corp_num = :c"),
                          {"c": corp_num}).one_or_none()  # fmt: skip
    if member is None:
        raise StatementError(f"--member: {corp_num} is not a member")
    return Member(*member)


# The first and last Korean month of a member's rows (any history): one probe of each
# (member_id, date) index. The last is the last usage's month; later months carry its balance.
_DATA_MONTHS = text(
    f"""
    SELECT m.id AS member_id,
           date_trunc('month', least(
               (SELECT min(tx_dt) FROM usages WHERE member_id = m.id),
               (SELECT min(reg_dt) FROM payments WHERE member_id = m.id),
               (SELECT min(req_dt) FROM refunds WHERE member_id = m.id)) AT TIME ZONE {KST_SQL})::date AS first_month,
           date_trunc('month', (SELECT max(tx_dt) FROM usages WHERE member_id = m.id) AT TIME ZONE {KST_SQL})::date
               AS last_month
    FROM unnest(CAST(:ids AS integer[])) AS m(id)
    """
)


def data_months(conn: Connection, member_ids: list[int]) -> dict[int, tuple[dt.date | None, dt.date | None]]:
    """Each member's first month with a row and last month with a usage row (None: no rows)."""
    return {r.member_id: (r.first_month, r.last_month) for r in conn.execute(_DATA_MONTHS, {"ids": member_ids})}


def check_month(month: dt.date, first: dt.date | None, last: dt.date | None, whose: str, today: dt.date) -> None:
    """Refuse a month outside the data: before the first row, or after the current Korean month
    (and after the last row, when the data runs ahead of the clock)."""
    current = max(today.replace(day=1), last or today.replace(day=1))
    if month > current:
        raise StatementError(f"--month: {month:%Y-%m} is after the current month ({current:%Y-%m})")
    if first is None:
        raise StatementError(f"--month: {whose} has no rows yet (run `ledger sync`)")
    if month < first:
        raise StatementError(f"--month: {month:%Y-%m} is before {whose}'s first row ({first:%Y-%m}); "
                             f"choose {first:%Y-%m} to {current:%Y-%m}")  # fmt: skip


def close_in_force(conn: Connection, member_id: int, month: dt.date):
    return conn.execute(
        text("SELECT figures, closed_by, closed_at FROM month_closes WHERE member_id = :m AND month = :month "
             "AND reopened_at IS NULL"), {"m": member_id, "month": month},
    ).one_or_none()  # fmt: skip


def _closes_in_force(conn: Connection, member_ids: list[int], month: dt.date) -> dict[int, Row]:
    return {r.member_id: r for r in conn.execute(
        text("SELECT member_id, figures, closed_by, closed_at FROM month_closes WHERE member_id = ANY(:ids) "
             "AND month = :month AND reopened_at IS NULL"), {"ids": member_ids, "month": month})}  # fmt: skip


def _frozen(corp_num: str, name: str | None, month: dt.date, close) -> Statement:
    lines = tuple(Line.thawed(item) for item in close.figures["lines"])
    return Statement(corp_num, name, month, lines, Closed(close.closed_by, close.closed_at))


@dataclasses.dataclass
class _Parts:
    """What one member-month's live statement is made of, read for a batch of members at once."""

    row: Row | None = None
    services: list[Row] = dataclasses.field(default_factory=list)
    deposits: list[Row] = dataclasses.field(default_factory=list)


def _parts(conn: Connection, members: list[Member], month: dt.date) -> dict[str, _Parts]:
    corp_nums = [m.corp_num for m in members]
    params = {"c": corp_nums, "m": month}
    parts = {c: _Parts() for c in corp_nums}
    for row in conn.execute(text("SELECT * FROM v_monthly_statements WHERE corp_num = ANY(:c) AND month = :m"), params):
        parts[row.corp_num].row = row
    for row in conn.execute(
        text("SELECT corp_num, item_code, transactions, points FROM v_monthly_usage_by_service "
             "WHERE corp_num = ANY(:c) AND month = :m ORDER BY corp_num, item_code"), params,
    ):  # fmt: skip
        parts[row.corp_num].services.append(row)
    for row in conn.execute(
        text("SELECT corp_num, reg_dt, state_dt, status, won, points FROM v_deposits "
             "WHERE corp_num = ANY(:c) AND month = :m ORDER BY corp_num, reg_dt, state_dt"), params,
    ):  # fmt: skip
        parts[row.corp_num].deposits.append(row)
    return parts


def _deposit_lines(deposits: list[Row]) -> tuple[dict, list[Line]]:
    totals = {status: [ZERO, ZERO] for status in ("settled", "pending", "cancelled", "unknown")}
    details = []
    for n, d in enumerate(deposits, 1):
        totals[d.status][0] += d.points or ZERO
        totals[d.status][1] += d.won or ZERO
        when = f"{d.reg_dt:%Y-%m-%d %H:%M:%S}"
        details.append(Line(f"deposit:{n}", f"Deposit requested {when}", f"충전 신청 {when}", d.points or ZERO,
                            d.won or ZERO, d.status))  # fmt: skip
    return totals, details


def _quiet_values(conn: Connection, member: Member, month: dt.date) -> dict:
    """A month the view has no line for (before the member's first row, or after the current
    month): nothing moved, and the balance is the last one before it."""
    before = conn.execute(
        text("SELECT closing_balance FROM v_monthly_statements WHERE corp_num = :c AND month < :m "
             "ORDER BY month DESC LIMIT 1"), {"c": member.corp_num, "m": month},
    ).scalar()  # fmt: skip
    carried = before if before is not None else ZERO
    opens = conn.execute(
        text("SELECT count(*) FROM discrepancies WHERE member_id = :m AND status = 'open'"), {"m": member.id}
    ).scalar()
    return {"opening_balance": carried, "deposits": ZERO, "bonus_credits": ZERO, "usage_points": ZERO,
            "refunds": ZERO, "adjustments": ZERO, "unclassified_points": ZERO, "closing_balance": carried,
            "transactions": 0, "open_discrepancies": opens}  # fmt: skip


def live_statements(conn: Connection, members: list[Member], month: dt.date, names: ServiceNames | None = None
                    ) -> dict[str, Statement]:  # fmt: skip
    """The statements as the ledger stands now, closed or not, of a batch of members: a few
    statements for the whole batch (and, where the month before is closed, its live
    statements, the same way)."""
    month = month.replace(day=1)
    if not members:
        return {}
    names = names or load_service_names(conn)
    parts = _parts(conn, members, month)
    previous = previous_month(month)
    previous_closes = _closes_in_force(conn, [m.id for m in members], previous)
    live_previous = live_statements(conn, [m for m in members if m.id in previous_closes], previous, names)
    statements = {}
    for member in members:
        part = parts[member.corp_num]
        values = dict(part.row._mapping) if part.row is not None else _quiet_values(conn, member, month)
        close = previous_closes.get(member.id)
        booked = None if close is None else _frozen(member.corp_num, member.name, previous, close)
        statements[member.corp_num] = _assemble(member, month, values, part, names, booked,
                                                live_previous.get(member.corp_num))  # fmt: skip
    return statements


def _assemble(member: Member, month: dt.date, values: dict, part: _Parts, names: ServiceNames,
              booked: Statement | None, live_previous: Statement | None) -> Statement:  # fmt: skip
    totals, details = _deposit_lines(part.deposits)
    opening = values["opening_balance"]
    adjustment_lines: list[Line] = []
    if booked is not None:
        # The books carry the frozen closing balance; what changed since is an adjustment here.
        previous = booked.month
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
                                             f"  {previous:%Y-%m} 변경: {figure_ko(key)}", change))  # fmt: skip

    lines = [Line("opening_balance", "Opening balance", "기초잔액", opening), *adjustment_lines,
             Line("deposits", "Deposits (points credited; won paid)", "충전 (적립 포인트; 결제금액 원)",
                  values["deposits"], totals["settled"][1], "settled"),
             Line("bonus_credits", "Bonus points (not paid money)", "보너스 포인트 (결제 아님)", values["bonus_credits"])]  # fmt: skip
    for service in part.services:
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
    return Statement(member.corp_num, member.name, month, tuple(lines))


def live_statement(conn: Connection, corp_num: str, month: dt.date, names: ServiceNames | None = None) -> Statement:
    """The statement as the ledger stands now, whether or not the month is closed."""
    member = _member(conn, corp_num)
    return live_statements(conn, [member], month, names)[member.corp_num]


def month_statements(conn: Connection, members: list[Member], month: dt.date, names: ServiceNames | None = None
                     ) -> list[Statement]:  # fmt: skip
    """The statements to hand over for a batch of members, in their order: the frozen one
    where the month is closed, else the live one."""
    month = month.replace(day=1)
    closes = _closes_in_force(conn, [m.id for m in members], month)
    live = live_statements(conn, [m for m in members if m.id not in closes], month, names)
    return [_frozen(m.corp_num, m.name, month, closes[m.id]) if m.id in closes else live[m.corp_num]
            for m in members]  # fmt: skip


def monthly_statement(engine: Engine, corp_num: str, month: dt.date, *, today: dt.date | None = None) -> Statement:
    """The statement to hand over: the frozen one when the month is closed, else the live one.
    A month outside the member's data is refused."""
    month = month.replace(day=1)
    with engine.connect() as conn:
        member = _member(conn, corp_num)
        first, last = data_months(conn, [member.id])[member.id]
        check_month(month, first, last, corp_num, today or today_kst())
        return month_statements(conn, [member], month)[0]
