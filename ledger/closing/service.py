"""close_month, reopen_month, list_closes, and check_closed_months: a change that reaches into
a closed month is never applied to its frozen figures; it stays in the ledger as it is, becomes
a closed_period_changed discrepancy with the difference, raises one alert, and shows as a
prior-period adjustment in the next month's statement (ledger.reports.statement)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.dialects.postgresql import insert

from ledger.alerts.outbox import enqueue
from ledger.closing.models import MonthClose
from ledger.db.among import among
from ledger.errors import UserInputError
from ledger.history.codes import load_service_names
from ledger.kst import now_kst, today_kst
from ledger.reconcile.models import Discrepancy
from ledger.reports.statement import Line, live_statement, next_month
from ledger.settings import Settings

CHECK = "closed_period_changed"


class CloseError(UserInputError):
    pass


@dataclasses.dataclass(frozen=True)
class Change:
    corp_num: str
    month: dt.date
    figure: str
    frozen: Decimal | None
    now: Decimal | None

    @property
    def difference(self) -> Decimal:
        return (self.now or Decimal(0)) - (self.frozen or Decimal(0))


def _members(conn: Connection, corp_nums: list[str] | None):
    if corp_nums:
        rows = conn.execute(text("SELECT id, corp_num FROM members WHERE corp_num = ANY(:c) ORDER BY corp_num"),
                            {"c": list(corp_nums)}).all()  # fmt: skip
        missing = sorted(set(corp_nums) - {r.corp_num for r in rows})
        if missing:
            raise CloseError(f"--member: {', '.join(missing)} is not a member")
        return rows
    return conn.execute(text("SELECT id, corp_num FROM members WHERE active ORDER BY corp_num")).all()


def close_month(
    engine: Engine, month: dt.date, by: str, *, corp_nums: list[str] | None = None, today: dt.date | None = None
) -> list[str]:
    """Freeze the month's statement for each member (all active ones by default); all or nothing."""
    month = month.replace(day=1)
    if next_month(month) > (today or today_kst()):
        raise CloseError(f"--month: {month:%Y-%m} has not ended yet in Korea; close it from {next_month(month)}")
    if not by.strip():
        raise CloseError("--by: who closes the month must be named")
    with engine.begin() as conn:
        members = _members(conn, corp_nums)
        closed = {r.member_id for r in conn.execute(
            text("SELECT member_id FROM month_closes WHERE month = :m AND reopened_at IS NULL"), {"m": month})}  # fmt: skip
        already = [m.corp_num for m in members if m.id in closed]
        if already:
            raise CloseError(f"--month: {month:%Y-%m} is already closed for {', '.join(already)} (reopen it first)")
        names = load_service_names(conn)
        for member in members:
            statement = live_statement(conn, member.corp_num, month, names)
            conn.execute(insert(MonthClose).values(
                member_id=member.id, month=month, closed_by=by.strip(),
                figures={"member_name": statement.member_name, "lines": [line.frozen() for line in statement.lines]},
            ))  # fmt: skip
    return [m.corp_num for m in members]


def reopen_month(
    engine: Engine, month: dt.date, by: str, reason: str, *, corp_nums: list[str] | None = None
) -> list[str]:
    month = month.replace(day=1)
    if not (reason or "").strip():
        raise CloseError("--reason: say why the month is reopened (it is kept in the audit record)")
    if not by.strip():
        raise CloseError("--by: who reopens the month must be named")
    with engine.begin() as conn:
        members = _members(conn, corp_nums)
        ids = [m.id for m in members]
        reopened = conn.execute(
            update(MonthClose)
            .where(among(MonthClose.member_id, ids), MonthClose.month == month, MonthClose.reopened_at.is_(None))
            .values(reopened_by=by.strip(), reopened_at=text("now()"), reopen_reason=reason.strip())
            .returning(MonthClose.member_id)
        ).scalars().all()  # fmt: skip
        if not reopened:
            raise CloseError(
                f"--month: {month:%Y-%m} is not closed" + (f" for {', '.join(corp_nums)}" if corp_nums else "")
            )
        # Differences against the figures no longer in force are moot.
        conn.execute(
            update(Discrepancy)
            .where(among(Discrepancy.member_id, reopened), Discrepancy.check_name == CHECK,
                   Discrepancy.period == f"{month:%Y-%m}", Discrepancy.status != "resolved")
            .values(status="resolved", resolved_at=text("now()"))
        )  # fmt: skip
    return [m.corp_num for m in members if m.id in set(reopened)]


def list_closes(engine: Engine, month: dt.date | None = None) -> list[dict]:
    """Every close and reopen, newest first: the audit trail."""
    query = text(
        "SELECT m.corp_num, c.month, c.closed_by, c.closed_at, c.reopened_by, c.reopened_at, c.reopen_reason "
        "FROM month_closes c JOIN members m ON m.id = c.member_id "
        + ("WHERE c.month = :month " if month else "")
        + "ORDER BY c.month DESC, m.corp_num, c.closed_at DESC"
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query, {"month": month.replace(day=1)} if month else {})]


def _changes(conn: Connection, names) -> tuple[list[tuple[int, Change]], list[tuple[int, str]]]:
    closes = conn.execute(
        text("SELECT c.member_id, m.corp_num, c.month, c.figures FROM month_closes c JOIN members m "
             "ON m.id = c.member_id WHERE c.reopened_at IS NULL ORDER BY m.corp_num, c.month")
    ).all()  # fmt: skip
    changes, checked = [], []
    for close in closes:
        frozen_lines = [Line.thawed(item) for item in close.figures["lines"]]
        frozen = {}
        for line in frozen_lines:
            if line.is_figure:
                frozen[line.key] = Decimal(line.amount)
                if line.won is not None:
                    frozen[f"{line.key}:won"] = line.won
        now = live_statement(conn, close.corp_num, close.month, names).figures()
        checked.append((close.member_id, f"{close.month:%Y-%m}"))
        for figure in sorted(set(frozen) | set(now)):
            if (frozen.get(figure) or Decimal(0)) != (now.get(figure) or Decimal(0)):
                changes.append((close.member_id, Change(close.corp_num, close.month, figure, frozen.get(figure),
                                                        now.get(figure))))  # fmt: skip
    return changes, checked


def check_closed_months(engine: Engine, settings: Settings, *, now: dt.datetime | None = None) -> list[Change]:
    """Compare every closed month with the ledger as it stands; keep each difference as a
    discrepancy (resolved once it is gone) and send one alert for those newly found."""
    now = now or now_kst()
    with engine.begin() as conn:
        changes, checked = _changes(conn, load_service_names(conn))
        known = {(r.member_id, r.period, r.fingerprint): r for r in conn.execute(
            select(Discrepancy.id, Discrepancy.member_id, Discrepancy.period, Discrepancy.fingerprint,
                   Discrepancy.status).where(Discrepancy.check_name == CHECK).with_for_update())}  # fmt: skip
        fresh, seen = [], set()
        for member_id, change in changes:
            ident = (member_id, f"{change.month:%Y-%m}", change.figure)
            seen.add(ident)
            before = known.get(ident)
            unit = "won" if change.figure.endswith(":won") else "points"
            values = {
                "expected": change.frozen, "actual": change.now, "difference": change.difference, "last_seen_at": now,
                "description": f"{change.month:%Y-%m} is closed, but its {change.figure} is now {change.now} "
                               f"{unit} against {change.frozen} frozen at close ({change.difference:+} {unit}); "
                               "the next open month's statement carries it as a prior-period adjustment",
                "evidence": {"month": f"{change.month:%Y-%m}", "figure": change.figure, "frozen": str(change.frozen),
                             "now": str(change.now)},
            }  # fmt: skip
            if before is None:
                conn.execute(insert(Discrepancy).values(member_id=member_id, check_name=CHECK, period=ident[1],
                                                        fingerprint=change.figure, first_seen_at=now, **values))  # fmt: skip
                fresh.append(change)
            else:
                reopened = {"status": "open", "resolved_at": None} if before.status == "resolved" else {}
                conn.execute(update(Discrepancy).where(Discrepancy.id == before.id).values(**values, **reopened))
                if reopened:
                    fresh.append(change)
        for ident, row in known.items():
            if ident not in seen and row.status != "resolved" and (ident[0], ident[1]) in checked:
                conn.execute(
                    update(Discrepancy).where(Discrepancy.id == row.id).values(status="resolved", resolved_at=now)
                )
        if fresh:
            months = sorted({(c.corp_num, f"{c.month:%Y-%m}") for c in fresh})
            summary = "; ".join(
                f"{corp} {month}: " + ", ".join(f"{c.figure} {c.difference:+}" for c in fresh
                                               if (c.corp_num, f"{c.month:%Y-%m}") == (corp, month))
                for corp, month in months
            )  # fmt: skip
            enqueue(conn, settings, alert_id=None, kind="discrepancy", now=now,
                    text=f"[CLOSED PERIOD CHANGED] {summary}",
                    payload={"check": CHECK, "changes": [{"corp_num": c.corp_num, "month": f"{c.month:%Y-%m}",
                             "figure": c.figure, "difference": str(c.difference)} for c in fresh]})  # fmt: skip
    return [c for _, c in changes]
