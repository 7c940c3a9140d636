"""reconcile(): run every check for each member, keep the findings as discrepancies (the same
one found again is the same row; one no longer found is resolved), and alert on new ones."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter

from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.dialects.postgresql import insert

from ledger.alerts.outbox import enqueue
from ledger.errors import UserInputError
from ledger.history.codes import load_codes
from ledger.kst import KST, now_kst
from ledger.members.models import Member
from ledger.popbill.codes import Codes
from ledger.reconcile import checks
from ledger.reconcile.models import Discrepancy
from ledger.settings import Settings


@dataclasses.dataclass(frozen=True)
class Period:
    label: str  # 'all', 'YYYY-MM', 'YYYY-MM-DD'
    start: dt.datetime | None = None
    end: dt.datetime | None = None  # exclusive

    @classmethod
    def of(cls, day: dt.date | None = None, month: str | None = None) -> Period:
        if day and month:
            raise UserInputError("give --date or --month, not both")
        if day:
            start = dt.datetime.combine(day, dt.time(), tzinfo=KST)
            return cls(day.isoformat(), start, start + dt.timedelta(days=1))
        if month:
            try:
                first = dt.date.fromisoformat(f"{month}-01")
            except ValueError:
                raise UserInputError(f"--month must be YYYY-MM, got {month!r}") from None
            following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            return cls(month, dt.datetime.combine(first, dt.time(), tzinfo=KST),
                       dt.datetime.combine(following, dt.time(), tzinfo=KST))  # fmt: skip
        return cls("all")

    def __contains__(self, moment: dt.datetime) -> bool:
        return (self.start is None or moment >= self.start) and (self.end is None or moment < self.end)


@dataclasses.dataclass
class MemberReport:
    corp_num: str
    open_by_check: Counter = dataclasses.field(default_factory=Counter)
    new: int = 0
    resolved: int = 0
    closing_checked: bool = False  # the ledger's closing balance was compared with a balance reading

    @property
    def reconciled(self) -> bool:
        """Nothing open, sync health included: a stale ledger is never reconciled."""
        return not self.open_by_check


_USAGE = text(
    """
    SELECT u.row_key || ':' || u.occurrence AS key, u.tx_dt, u.tx_type, abs(u.tx_point) AS tx_point, u.balance,
           t.direction, t.category
    FROM usages u LEFT JOIN tx_types t ON t.code = u.tx_type
    WHERE u.member_id = :m ORDER BY u.tx_dt, u.id
    """
)

# A period's rows, read by the (member_id, tx_dt) index: from `since` to `until`, plus the
# balance carried in (the rows of the last two seconds before `since`, so the chain enters
# the period from a settled row, whatever order that second's rows take).
USAGE_BETWEEN = text(
    """
    SELECT u.row_key || ':' || u.occurrence AS key, u.tx_dt, u.tx_type, u.tx_point, u.balance, t.direction, t.category
    FROM usages u LEFT JOIN tx_types t ON t.code = u.tx_type
    WHERE u.member_id = :m AND u.tx_dt < :until AND u.tx_dt >= coalesce(
        (SELECT min(tx_dt) FROM (SELECT DISTINCT tx_dt FROM usages WHERE member_id = :m AND tx_dt < :since
                                 ORDER BY tx_dt DESC LIMIT 2) carried), :since)
    ORDER BY u.tx_dt, u.id
    """
)


def _usage_rows(conn: Connection, member_id: int, settings: Settings, period: Period) -> list[checks.UsageRow]:
    """All of a member's rows, or for a period only what its checks need: the period widened
    by the matching windows (a deposit's credit may lie days away, a refund's debit weeks)."""
    if period.start is None:
        result = conn.execute(_USAGE, {"m": member_id})
    else:
        reach = dt.timedelta(days=max(settings.reconcile_match_days, settings.reconcile_refund_days))
        result = conn.execute(
            USAGE_BETWEEN, {"m": member_id, "since": period.start - reach, "until": period.end + reach}
        )
    return [checks.UsageRow(r.key, r.tx_dt, r.tx_type, r.tx_point, r.balance, r.direction, r.category) for r in result]


def _findings(
    conn: Connection, member_id: int, settings: Settings, codes: Codes, period: Period, now: dt.datetime,
    report: MemberReport | None = None,
) -> list[checks.Finding]:
    rows = _usage_rows(conn, member_id, settings, period)
    found = checks.balance_chain(rows, period.__contains__)

    states = {r.kind: r for r in conn.execute(
        text("SELECT kind, last_success_at FROM sync_states WHERE member_id = :m"), {"m": member_id})}  # fmt: skip
    usage_synced = states.get("usage")
    if period.label == "all" and usage_synced and usage_synced.last_success_at:
        snapshot = conn.execute(
            text("SELECT balance, taken_at FROM balance_snapshots WHERE member_id = :m AND taken_at >= "
                 "(SELECT max(started_at) FROM sync_runs WHERE member_id = :m AND kind = 'usage' AND status = 'succeeded') "
                 "ORDER BY taken_at LIMIT 1"), {"m": member_id},
        ).one_or_none()  # fmt: skip
        if snapshot:
            found += checks.closing_balance(rows, snapshot.balance, snapshot.taken_at)
            if report is not None:
                report.closing_checked = True

    tolerance = dt.timedelta(days=settings.reconcile_match_days)
    payments = conn.execute(
        text("SELECT row_key || ':' || occurrence AS key, reg_dt, state_dt, settle_point, settle_state FROM payments "
             "WHERE member_id = :m"), {"m": member_id},
    ).all()  # fmt: skip
    refunds = conn.execute(
        text(
            "SELECT row_key || ':' || occurrence AS key, req_dt, request_point, state FROM refunds WHERE member_id = :m"
        ),
        {"m": member_id},
    ).all()
    first_row = conn.execute(text("SELECT min(tx_dt) FROM usages WHERE member_id = :m"), {"m": member_id}).scalar()
    starts = [first_row] if first_row else []
    starts += [min(p.reg_dt for p in payments)] if payments else []
    # Near the start of what was synced, a credit's deposit (or the reverse) may predate the ledger.
    coverage = (max(starts) + tolerance) if starts else None

    def covered(moment: dt.datetime) -> bool:
        return coverage is not None and moment >= coverage

    deposits = [checks.Settled(p.key, p.settle_point, p.state_dt or p.reg_dt, (p.state_dt or p.reg_dt) - tolerance,
                               (p.state_dt or p.reg_dt) + tolerance)
                for p in payments if p.settle_state in codes.settle_done]  # fmt: skip
    found += checks.match(
        deposits,
        [r for r in rows if r.category == "charge"],
        check_settled="deposit_without_credit",
        check_row="credit_without_deposit",
        what="deposit",
        in_period=period.__contains__,
        covered=covered,
    )
    window = dt.timedelta(days=settings.reconcile_refund_days)
    done_refunds = [checks.Settled(r.key, r.request_point, r.req_dt, r.req_dt, r.req_dt + window)
                    for r in refunds if r.state in codes.refund_done]  # fmt: skip
    found += checks.match(
        done_refunds,
        [r for r in rows if r.category == "refund"],
        check_settled="refund_without_debit",
        check_row="debit_without_refund",
        what="refund",
        in_period=period.__contains__,
        covered=covered,
    )

    stuck = dt.timedelta(seconds=settings.pending_stuck_after)
    pending = [("deposit", p.key, p.settle_point, p.reg_dt) for p in payments if p.settle_state in codes.settle_pending]
    pending += [("refund", r.key, r.request_point, r.req_dt) for r in refunds if r.state in codes.refund_pending]
    found += checks.aging(pending, now, stuck)
    found += checks.quarantined(conn.execute(
        text("SELECT kind, fingerprint, reason, payload, times_seen, first_seen_at, last_seen_at "
             "FROM quarantined_rows WHERE member_id = :m ORDER BY id"), {"m": member_id}))  # fmt: skip
    found += checks.stale_syncs({k: (states[k].last_success_at if k in states else None) for k in ("payments", "usage", "refunds")},
                                now, dt.timedelta(seconds=settings.reconcile_max_sync_age))  # fmt: skip
    return found


def _store(conn: Connection, member_id: int, period: Period, findings: list[checks.Finding], now: dt.datetime,
           report: MemberReport) -> None:  # fmt: skip
    known = {(r.check_name, r.fingerprint): r for r in conn.execute(
        select(Discrepancy.id, Discrepancy.check_name, Discrepancy.fingerprint, Discrepancy.status)
        .where(Discrepancy.member_id == member_id, Discrepancy.period == period.label).with_for_update())}  # fmt: skip
    seen = set()
    for f in findings:
        ident = (f.check, f.fingerprint)
        if ident in seen:
            continue
        seen.add(ident)
        values = {"expected": f.expected, "actual": f.actual, "difference": f.difference, "description": f.description,
                  "evidence": f.evidence, "last_seen_at": now}  # fmt: skip
        before = known.get(ident)
        if before is None or before.status == "resolved":
            report.new += 1
        if before is None:
            conn.execute(insert(Discrepancy).values(member_id=member_id, check_name=f.check, period=period.label,
                                                    fingerprint=f.fingerprint, first_seen_at=now, **values))  # fmt: skip
        else:
            reopened = {"status": "open", "resolved_at": None} if before.status == "resolved" else {}
            conn.execute(update(Discrepancy).where(Discrepancy.id == before.id).values(**values, **reopened))
        report.open_by_check[f.check] += 1
    for ident, row in known.items():
        if ident not in seen and row.status != "resolved":
            conn.execute(update(Discrepancy).where(Discrepancy.id == row.id).values(status="resolved", resolved_at=now))
            report.resolved += 1


def reconcile(
    engine: Engine, settings: Settings, *, corp_nums: list[str] | None = None, period: Period | None = None,
    now: dt.datetime | None = None,
) -> list[MemberReport]:  # fmt: skip
    period = period or Period.of()
    now = now or now_kst()
    reports = []
    with engine.connect() as conn:
        query = select(Member.id, Member.corp_num).order_by(Member.corp_num)
        query = query.where(Member.corp_num.in_(corp_nums)) if corp_nums else query.where(Member.active.is_(True))
        members = conn.execute(query).all()
        codes = load_codes(conn)
    for member in members:
        report = MemberReport(member.corp_num)
        with engine.begin() as conn:
            _store(conn, member.id, period, _findings(conn, member.id, settings, codes, period, now, report), now, report)
        reports.append(report)
    from ledger.closing.service import check_closed_months

    by_corp = {r.corp_num: r for r in reports}
    for change in check_closed_months(engine, settings, now=now):  # alerts on its own, once per new change
        if change.corp_num in by_corp:
            by_corp[change.corp_num].open_by_check["closed_period_changed"] += 1
    fresh = [r for r in reports if r.new]
    if fresh:
        text_ = "[DISCREPANCY] " + "; ".join(f"{r.corp_num}: {r.new} new" for r in fresh) + f" ({period.label})"
        with engine.begin() as conn:
            enqueue(conn, settings, alert_id=None, kind="discrepancy", text=text_, now=now,
                    payload={"period": period.label, "members": {r.corp_num: dict(r.open_by_check) for r in fresh}})  # fmt: skip
    return reports


__all__ = ["MemberReport", "Period", "reconcile"]
