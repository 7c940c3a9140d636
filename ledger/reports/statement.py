"""A member's monthly statement: opening balance, what came in, what went out, closing balance."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from sqlalchemy import Engine, text

from ledger.errors import UserInputError
from ledger.reports.labels import SERVICES


@dataclasses.dataclass(frozen=True)
class Line:
    key: str
    label_en: str
    label_ko: str
    amount: Decimal | int


@dataclasses.dataclass(frozen=True)
class Statement:
    corp_num: str
    member_name: str | None
    month: dt.date
    lines: tuple[Line, ...]

    def amount(self, key: str) -> Decimal | int:
        return next(line.amount for line in self.lines if line.key == key)

    @property
    def balanced(self) -> bool:
        """opening + deposits + bonus - usage - refunds + adjustments == closing."""
        a = self.amount
        moved = a("deposits") + a("bonus_credits") - a("usage_points") - a("refunds") + a("adjustments")
        return a("opening_balance") + moved == a("closing_balance")


class StatementError(UserInputError):
    pass


def monthly_statement(engine: Engine, corp_num: str, month: dt.date) -> Statement:
    month = month.replace(day=1)
    with engine.connect() as conn:
        member = conn.execute(text("SELECT id, name FROM members WHERE corp_num = :c"), {"c": corp_num}).one_or_none()
        if member is None:
            raise StatementError(f"--member: {corp_num} is not a member")
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
            carried = before if before is not None else Decimal(0)
            opens = conn.execute(
                text("SELECT count(*) FROM discrepancies WHERE member_id = :m AND status = 'open'"), {"m": member.id}
            ).scalar()
            values = {"opening_balance": carried, "deposits": Decimal(0), "bonus_credits": Decimal(0),
                      "usage_points": Decimal(0), "refunds": Decimal(0), "adjustments": Decimal(0),
                      "closing_balance": carried, "transactions": 0, "open_discrepancies": opens}  # fmt: skip
        else:
            values = dict(row._mapping)
    lines = [Line("opening_balance", "Opening balance", "기초잔액", values["opening_balance"]),
             Line("deposits", "Deposits", "충전", values["deposits"]),
             Line("bonus_credits", "Bonus credits", "보너스", values["bonus_credits"])]  # fmt: skip
    for service in services:
        name = SERVICES.get(service.item_code, "")
        lines.append(Line(f"usage:{service.item_code}", f"Usage {service.item_code} {name}".rstrip(),
                          f"사용 {name}({service.item_code})" if name else f"사용 ({service.item_code})", service.points))  # fmt: skip
    lines += [Line("usage_points", "Usage, total", "사용 합계", values["usage_points"]),
              Line("refunds", "Refunds", "환불", values["refunds"]),
              Line("adjustments", "Adjustments", "조정", values["adjustments"]),
              Line("closing_balance", "Closing balance", "기말잔액", values["closing_balance"]),
              Line("transactions", "Transactions", "거래 건수", values["transactions"]),
              Line("open_discrepancies", "Open discrepancies", "미해결 불일치", values["open_discrepancies"])]  # fmt: skip
    return Statement(corp_num, member.name, month, tuple(lines))
