"""close_month, reopen_month, list_closes, and check_closed_months: a change that reaches into
a closed month is never applied to its frozen figures; it stays in the ledger as it is, becomes
a closed_period_changed discrepancy with the difference, raises one alert, and shows as a
prior-period adjustment in the next month's statement (ledger.reports.statement)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from decimal import Decimal

from sqlalchemy import Connection, Engine, Row, select, text, update
from sqlalchemy.dialects.postgresql import insert

from ledger.alerts.outbox import enqueue
from ledger.closing.models import MonthClose
from ledger.db.among import among
from ledger.errors import UserInputError
from ledger.history.codes import load_service_names
from ledger.kst import KST, now_kst, today_kst
from ledger.reconcile.models import Discrepancy
from ledger.reports.statement import Line, Statement, live_statement, live_statements, next_month
from ledger.reports.statement import Member as StatementMember
from ledger.settings import Settings

CHECK = "closed_period_changed"
BATCH = 500  # members whose statements are read at once


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
        rows = conn.execute(text("SELECT id, corp_num, name FROM members WHERE corp_num = ANY(:c) ORDER BY corp_num"),
                            {"c": list(corp_nums)}).all()  # fmt: skip
        missing = sorted(set(corp_nums) - {r.corp_num for r in rows})
        if missing:
            raise CloseError(f"--member: {', '.join(missing)} is not a member")
        return rows
    return conn.execute(text("SELECT id, corp_num, name FROM members WHERE active ORDER BY corp_num")).all()


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A member whose month cannot be closed as it stands, and why."""

    corp_num: str
    name: str | None
    reasons: tuple[str, ...]
    never_synced: bool = False  # --force closes the others, never these: there is nothing to freeze


class CloseRefused(CloseError):
    def __init__(self, month: dt.date, refusals: list[Refusal], forced: bool) -> None:
        self.month, self.refusals = month, refusals
        named = "; ".join(f"{r.corp_num}: {', '.join(r.reasons)}" for r in refusals[:5])
        more = f"; and {len(refusals) - 5} more (--json lists every one)" if len(refusals) > 5 else ""
        hint = ("sync them first (--force never closes a member that was never synced)" if forced else
                'fix them first (`ledger reconcile --month`, `ledger sync`), or close anyway with --force --reason "…"')  # fmt: skip
        super().__init__(f"--month: {month:%Y-%m} cannot be closed for {len(refusals)} member(s): {named}{more}; {hint}")


@dataclasses.dataclass
class CloseResult:
    month: dt.date
    closed: list[str] = dataclasses.field(default_factory=list)
    forced: list[Refusal] = dataclasses.field(default_factory=list)  # closed over these failures, with the reason
    left_out: list[Refusal] = dataclasses.field(default_factory=list)  # never synced: not closed under --force


# Sync coverage of a month: usage and payments synced through its last day (the high-water
# mark is a day all of which has been read, so the day after the month), and a refunds
# sync that succeeded after the month ended.
_SYNC_STATES = text(
    "SELECT member_id, kind, high_water, last_success_at FROM sync_states WHERE member_id = ANY(:ids)"
)
_OPEN_DISCREPANCIES = text(
    "SELECT member_id, check_name, period, evidence FROM discrepancies "
    "WHERE member_id = ANY(:ids) AND status = 'open' AND check_name <> 'sync_stale' ORDER BY member_id, id"
)
_DATE = re.compile(r"\b(\d{4})-(\d{2})-\d{2}")


def _months_named(evidence) -> set[str]:
    """The 'YYYY-MM' of every date the evidence names (its rows' times)."""
    return {f"{y}-{m}" for y, m in _DATE.findall(json.dumps(evidence))}


def touches(check_name: str, period: str, evidence, month: dt.date) -> bool:
    """Whether an open discrepancy concerns the month: its period is the month (or a day of
    it), or a date in its evidence lies in it; one that names no date may concern any month."""
    label = f"{month:%Y-%m}"
    if period != "all":
        return period[:7] == label
    named = _months_named(evidence)
    return label in named or not named


def _coverage(states: dict[str, Row], month: dt.date) -> tuple[bool, list[str]]:
    """(never synced, what is missing for the month)."""
    ends = next_month(month)
    if not any(s.last_success_at for s in states.values()):
        return True, ["never synced"]
    missing = []
    for kind in ("usage", "payments"):
        state = states.get(kind)
        if state is None or state.high_water is None:
            missing.append(f"{kind} never synced")
        elif state.high_water < ends:
            missing.append(f"{kind} not synced past {state.high_water} (the month ends {ends - dt.timedelta(days=1)}; "
                           f"sync on or after {ends})")  # fmt: skip
    refunds = states.get("refunds")
    end_instant = dt.datetime.combine(ends, dt.time(), tzinfo=KST)
    if refunds is None or refunds.last_success_at is None:
        missing.append("refunds never synced")
    elif refunds.last_success_at < end_instant:
        missing.append(f"refunds last synced {refunds.last_success_at.astimezone(KST):%Y-%m-%d %H:%M}, "
                       f"before {month:%Y-%m} ended")  # fmt: skip
    return False, missing


def _refusals(conn: Connection, members, month: dt.date, statements: dict[str, Statement]) -> list[Refusal]:
    ids = [m.id for m in members]
    states: dict[int, dict[str, Row]] = {}
    for row in conn.execute(_SYNC_STATES, {"ids": ids}):
        states.setdefault(row.member_id, {})[row.kind] = row
    touching: dict[int, list[str]] = {}
    for row in conn.execute(_OPEN_DISCREPANCIES, {"ids": ids}):
        if touches(row.check_name, row.period, row.evidence, month):
            touching.setdefault(row.member_id, []).append(row.check_name)
    refusals = []
    for member in members:
        never, reasons = _coverage(states.get(member.id, {}), month)
        found = touching.get(member.id)
        if found and not never:
            counts = ", ".join(f"{name}" + (f" x{found.count(name)}" if found.count(name) > 1 else "")
                               for name in dict.fromkeys(found))  # fmt: skip
            reasons.append(f"{len(found)} open discrepanc{'y' if len(found) == 1 else 'ies'} touching "
                           f"{month:%Y-%m} ({counts})")  # fmt: skip
        statement = statements[member.corp_num]
        if not never and not statement.balanced:
            reasons.append(f"its statement does not add up (closing - opening - movements = {statement.difference:+})")
        if reasons:
            refusals.append(Refusal(member.corp_num, member.name, tuple(reasons), never))
    return refusals


def close_month(
    engine: Engine, month: dt.date, by: str, *, corp_nums: list[str] | None = None, today: dt.date | None = None,
    force_reason: str | None = None,
) -> CloseResult:  # fmt: skip
    """Freeze the month's statement for each member (all active ones by default), all or
    nothing: refused, naming each member and why, when a member has open discrepancies
    touching the month, never completed a sync covering the whole month, or its statement
    does not add up. With `force_reason` those members are closed anyway and the reason, with
    what was overridden, is kept on their close; a member never synced is never closed."""
    month = month.replace(day=1)
    if next_month(month) > (today or today_kst()):
        raise CloseError(f"--month: {month:%Y-%m} has not ended yet in Korea; close it from {next_month(month)}")
    if not by.strip():
        raise CloseError("--by: who closes the month must be named")
    if force_reason is not None and not force_reason.strip():
        raise CloseError("--reason: say why the month is closed over its checks (it is kept in the audit record)")
    result = CloseResult(month)
    with engine.begin() as conn:
        members = [StatementMember(m.id, m.corp_num, m.name) for m in _members(conn, corp_nums)]
        closed = {r.member_id for r in conn.execute(
            text("SELECT member_id FROM month_closes WHERE month = :m AND reopened_at IS NULL"), {"m": month})}  # fmt: skip
        already = [m.corp_num for m in members if m.id in closed]
        if already:
            named = ", ".join(already[:5]) + (f" and {len(already) - 5} more" if len(already) > 5 else "")
            raise CloseError(f"--month: {month:%Y-%m} is already closed for {named} (reopen it first)")
        names = load_service_names(conn)
        refused = []
        for first in range(0, len(members), BATCH):
            # Written batch by batch, so memory holds one batch's figures; a refusal found in a
            # later batch rolls the whole transaction back: all or nothing still.
            rows = []
            batch = members[first : first + BATCH]
            statements = live_statements(conn, batch, month, names)
            refusals = {r.corp_num: r for r in _refusals(conn, batch, month, statements)}
            for member in batch:
                refusal = refusals.get(member.corp_num)
                if refusal is not None:
                    if force_reason is None or refusal.never_synced:
                        refused.append(refusal)
                        continue
                    result.forced.append(refusal)
                statement = statements[member.corp_num]
                rows.append({
                    "member_id": member.id, "month": month, "closed_by": by.strip(),
                    "figures": {"member_name": statement.member_name, "lines": [line.frozen() for line in statement.lines]},
                    "forced_reason": None if refusal is None else f"{force_reason.strip()} (over: {'; '.join(refusal.reasons)})",
                })  # fmt: skip
                result.closed.append(member.corp_num)
            if rows and not (refused and force_reason is None):
                conn.execute(insert(MonthClose), rows)
        if refused and (force_reason is None or not result.closed):
            raise CloseRefused(month, refused, forced=force_reason is not None)
        result.left_out = refused  # never synced: --force closed the others
    return result


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
        "SELECT m.corp_num, c.month, c.closed_by, c.closed_at, c.forced_reason, c.reopened_by, c.reopened_at, "
        "c.reopen_reason "
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
