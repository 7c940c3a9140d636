"""reconcile(): run every check for each member, keep the findings as discrepancies (the same
one found again is the same row; one no longer found is resolved), and alert on new ones."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator
from itertools import groupby
from operator import itemgetter

from sqlalchemy import Connection, Engine, Row, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert

from ledger.alerts.outbox import enqueue
from ledger.closing.service import check_closed_months
from ledger.db.among import among
from ledger.errors import UserInputError
from ledger.history.codes import load_codes
from ledger.kst import KST, now_kst
from ledger.members.models import Member
from ledger.popbill.codes import Codes
from ledger.reconcile import checks, repair
from ledger.reconcile.models import Discrepancy
from ledger.settings import Settings

log = logging.getLogger(__name__)


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
    repairs: list[str] = dataclasses.field(default_factory=list)  # what came of windows fetched again
    refetching: list[str] = dataclasses.field(default_factory=list)  # windows the next sync fetches again
    error: str | None = None  # the checks of this member failed (the others went on)

    @property
    def reconciled(self) -> bool:
        """Nothing open, sync health included: a stale ledger is never reconciled."""
        return not self.open_by_check and self.error is None


# Members are reconciled in batches: each of the statements below reads a whole batch's rows
# (`member_id = ANY(:ids)`), so the cost is per row, not per member and round trip.
BATCH_MEMBERS = 500

_USAGE = text(
    """
    SELECT u.member_id, u.row_key || ':' || u.occurrence AS key, u.tx_dt, u.tx_type, abs(u.tx_point) AS tx_point,
           u.balance, t.direction, t.category
    FROM usages u LEFT JOIN tx_types t ON t.code = u.tx_type
    WHERE u.member_id = ANY(:ids) ORDER BY u.member_id, u.tx_dt, u.id
    """
)

# A period's rows, read by the (member_id, tx_dt) index: from `since` to `until`, plus the
# balance carried in (the rows of the last two seconds before `since`, so the chain enters
# the period from a settled row, whatever order that second's rows take). One index range per
# member of the batch. tx_point is the magnitude, as in the full run: the checks take the
# sign from the balance chain and tx_types, whichever way the wire signed it.
USAGE_BETWEEN = text(
    """
    SELECT m.id AS member_id, u.key, u.tx_dt, u.tx_type, u.tx_point, u.balance, u.direction, u.category
    FROM unnest(CAST(:ids AS integer[])) AS m(id)
    CROSS JOIN LATERAL (
        SELECT u.id, u.row_key || ':' || u.occurrence AS key, u.tx_dt, u.tx_type, abs(u.tx_point) AS tx_point,
               u.balance, t.direction, t.category
        FROM usages u LEFT JOIN tx_types t ON t.code = u.tx_type
        WHERE u.member_id = m.id AND u.tx_dt < :until AND u.tx_dt >= coalesce(
            (SELECT min(tx_dt) FROM (SELECT DISTINCT tx_dt FROM usages WHERE member_id = m.id AND tx_dt < :since
                                     ORDER BY tx_dt DESC LIMIT 2) carried), :since)
    ) u
    ORDER BY m.id, u.tx_dt, u.id
    """
)

# The first usage of each member of the batch (one probe of the index each).
_FIRST_USAGE = text(
    "SELECT m.id AS member_id, (SELECT min(tx_dt) FROM usages WHERE member_id = m.id) AS first_dt "
    "FROM unnest(CAST(:ids AS integer[])) AS m(id)"
)

# The first balance reading since the member's last succeeded usage sync.
_SNAPSHOTS = text(
    """
    SELECT m.id AS member_id, s.balance, s.taken_at
    FROM unnest(CAST(:ids AS integer[])) AS m(id)
    CROSS JOIN LATERAL (
        SELECT b.balance, b.taken_at FROM balance_snapshots b
        WHERE b.member_id = m.id AND b.taken_at >= (SELECT max(started_at) FROM sync_runs
                                                    WHERE member_id = m.id AND kind = 'usage' AND status = 'succeeded')
        ORDER BY b.taken_at LIMIT 1
    ) s
    """
)


@dataclasses.dataclass
class _Batch:
    """What the checks read besides usage rows, for every member of a batch, by member id."""

    states: dict[int, dict]
    snapshots: dict[int, Row]
    payments: dict[int, list[Row]]
    refunds: dict[int, list[Row]]
    quarantined: dict[int, list[Row]]
    first_usage: dict[int, dt.datetime | None]


def _by_member(result) -> dict[int, list[Row]]:
    grouped: dict[int, list[Row]] = {}
    for row in result:
        grouped.setdefault(row.member_id, []).append(row)
    return grouped


def _load_batch(conn: Connection, ids: list[int], period: Period) -> _Batch:
    params = {"ids": ids}
    states: dict[int, dict] = {}
    for r in conn.execute(
        text("SELECT member_id, kind, last_success_at FROM sync_states WHERE member_id = ANY(:ids)"), params
    ):
        states.setdefault(r.member_id, {})[r.kind] = r
    snapshots = {r.member_id: r for r in conn.execute(_SNAPSHOTS, params)} if period.label == "all" else {}
    payments = _by_member(conn.execute(
        text("SELECT member_id, row_key || ':' || occurrence AS key, reg_dt, state_dt, settle_point, settle_state "
             "FROM payments WHERE member_id = ANY(:ids) ORDER BY member_id, reg_dt, id"), params))  # fmt: skip
    refunds = _by_member(conn.execute(
        text("SELECT member_id, row_key || ':' || occurrence AS key, req_dt, request_point, state FROM refunds "
             "WHERE member_id = ANY(:ids) ORDER BY member_id, req_dt, id"), params))  # fmt: skip
    quarantined = _by_member(conn.execute(
        text("SELECT member_id, kind, fingerprint, reason, payload, times_seen, first_seen_at, last_seen_at "
             "FROM quarantined_rows WHERE member_id = ANY(:ids) ORDER BY member_id, id"), params))  # fmt: skip
    # A full run reads every row in tx_dt order, so its first row is the first usage.
    first_usage = {} if period.start is None else dict(conn.execute(_FIRST_USAGE, params).all())
    return _Batch(states, snapshots, payments, refunds, quarantined, first_usage)


def _usage_rows(
    conn: Connection, ids: list[int], settings: Settings, period: Period
) -> Iterator[tuple[int, list[checks.UsageRow]]]:
    """(member id, its rows) for each member of `ids` with rows, in member id order: all of
    them, or for a period only what its checks need: the period widened by the matching windows
    (a deposit's credit may lie days away, a refund's debit weeks). Streamed from a server-side
    cursor, so one member's rows are in memory at a time, not the batch's."""
    if period.start is None:
        query, params = _USAGE, {"ids": ids}
    else:
        reach = dt.timedelta(days=max(settings.reconcile_match_days, settings.reconcile_refund_days))
        query, params = USAGE_BETWEEN, {"ids": ids, "since": period.start - reach, "until": period.end + reach}
    result = conn.execute(query, params, execution_options={"stream_results": True, "yield_per": _STREAM_ROWS})
    make = checks.UsageRow._make
    for member_id, rows in groupby(result, key=itemgetter(0)):
        yield member_id, [make(r[1:]) for r in rows]


_STREAM_ROWS = 10_000


def _findings(
    rows: list[checks.UsageRow], data: _Batch, member_id: int, settings: Settings, codes: Codes, period: Period,
    now: dt.datetime, report: MemberReport | None = None,
) -> list[checks.Finding]:  # fmt: skip
    found = checks.balance_chain(rows, period.__contains__)

    states = data.states.get(member_id, {})
    usage_synced = states.get("usage")
    if period.label == "all" and usage_synced and usage_synced.last_success_at:
        snapshot = data.snapshots.get(member_id)
        if snapshot:
            found += checks.closing_balance(rows, snapshot.balance, snapshot.taken_at)
            if report is not None:
                report.closing_checked = True

    tolerance = dt.timedelta(days=settings.reconcile_match_days)
    payments = data.payments.get(member_id, [])
    refunds = data.refunds.get(member_id, [])
    first_row = (rows[0].tx_dt if rows else None) if period.start is None else data.first_usage.get(member_id)
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
    found += checks.quarantined(data.quarantined.get(member_id, []))
    found += checks.stale_syncs({k: (states[k].last_success_at if k in states else None) for k in ("payments", "usage", "refunds")},
                                now, dt.timedelta(seconds=settings.reconcile_max_sync_age))  # fmt: skip
    return found


@dataclasses.dataclass
class _Writes:
    """A batch's changes to discrepancies, written in a few statements."""

    inserts: list[dict] = dataclasses.field(default_factory=list)
    updates: list[dict] = dataclasses.field(default_factory=list)
    reopens: list[dict] = dataclasses.field(default_factory=list)
    resolves: list[int] = dataclasses.field(default_factory=list)


def _store(member_id: int, period: Period, findings: list[checks.Finding], now: dt.datetime, known: dict,
           report: MemberReport, writes: _Writes) -> None:  # fmt: skip
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
            writes.inserts.append({"member_id": member_id, "check_name": f.check, "period": period.label,
                                   "fingerprint": f.fingerprint, "first_seen_at": now, **values})  # fmt: skip
        elif before.status == "resolved":
            writes.reopens.append({"_id": before.id, **values})
        else:
            writes.updates.append({"_id": before.id, **values})
        report.open_by_check[f.check] += 1
    for ident, row in known.items():
        if ident not in seen and row.status != "resolved":
            writes.resolves.append(row.id)
            report.resolved += 1


_VALUES = {c: bindparam(c, type_=Discrepancy.__table__.c[c].type)
           for c in ("expected", "actual", "difference", "description", "evidence", "last_seen_at")}  # fmt: skip


def _write(conn: Connection, writes: _Writes, now: dt.datetime) -> None:
    if writes.inserts:
        conn.execute(insert(Discrepancy), writes.inserts)
    by_id = Discrepancy.__table__.c.id == bindparam("_id")
    if writes.updates:
        conn.execute(update(Discrepancy.__table__).where(by_id).values(**_VALUES), writes.updates)
    if writes.reopens:
        conn.execute(update(Discrepancy.__table__).where(by_id).values(**_VALUES, status="open", resolved_at=None),
                     writes.reopens)  # fmt: skip
    if writes.resolves:
        conn.execute(
            update(Discrepancy).where(among(Discrepancy.id, writes.resolves)).values(status="resolved", resolved_at=now)
        )


def _reconcile_batch(
    conn: Connection, members: list, settings: Settings, codes: Codes, period: Period, now: dt.datetime
) -> list[MemberReport]:
    ids = sorted(m.id for m in members)
    # A batch's usage rows (about 250,000 for 500 members with a year each) are sorted for the
    # chain: in memory rather than in temporary files; and JIT compiling cost ~100 ms a
    # statement and saved nothing here. ~20% of the server's time per batch, measured.
    conn.execute(text("SET LOCAL work_mem = '64MB'"))
    conn.execute(text("SET LOCAL jit = off"))
    data = _load_batch(conn, ids, period)
    known: dict[int, dict] = {}
    for r in conn.execute(
        select(Discrepancy.id, Discrepancy.member_id, Discrepancy.check_name, Discrepancy.fingerprint,
               Discrepancy.status)
        .where(among(Discrepancy.member_id, ids), Discrepancy.period == period.label).with_for_update()
    ):  # fmt: skip
        known.setdefault(r.member_id, {})[(r.check_name, r.fingerprint)] = r
    reports = {m.id: MemberReport(m.corp_num) for m in members}
    writes = _Writes()
    findings: dict[int, list[checks.Finding]] = {}

    def check(member_id: int, rows: list[checks.UsageRow]) -> None:
        report = reports[member_id]
        try:
            found = _findings(rows, data, member_id, settings, codes, period, now, report)
        except Exception as exc:  # this member's problem: its discrepancies stay as they were, the others go on
            log.exception("reconciling %s failed", report.corp_num)
            report.error = f"{type(exc).__name__}: {exc}"[:500]
            return
        findings[member_id] = found
        _store(member_id, period, found, now, known.get(member_id, {}), report, writes)

    without_rows = iter(ids)
    for member_id, rows in _usage_rows(conn, ids, settings, period):
        for other in without_rows:  # ids are in the rows' order: those skipped have no rows
            if other == member_id:
                break
            check(other, [])
        check(member_id, rows)
    for other in without_rows:
        check(other, [])
    _write(conn, writes, now)
    if period.label == "all":  # a --date or --month run does not see every finding: it judges none
        repair.review(conn, findings, reports, settings, now)
    return [reports[m.id] for m in members]


def reconcile(
    engine: Engine, settings: Settings, *, corp_nums: list[str] | None = None, period: Period | None = None,
    now: dt.datetime | None = None,
) -> list[MemberReport]:  # fmt: skip
    period = period or Period.of()
    now = now or now_kst()
    reports = []
    with engine.connect() as conn:
        query = select(Member.id, Member.corp_num).order_by(Member.corp_num)
        query = query.where(among(Member.corp_num, corp_nums)) if corp_nums else query.where(Member.active.is_(True))
        members = conn.execute(query).all()
        codes = load_codes(conn)
    for first in range(0, len(members), BATCH_MEMBERS):
        with engine.begin() as conn:
            reports += _reconcile_batch(conn, members[first : first + BATCH_MEMBERS], settings, codes, period, now)

    by_corp = {r.corp_num: r for r in reports}
    for change in check_closed_months(engine, settings, now=now):  # alerts on its own, once per new change
        if change.corp_num in by_corp:
            by_corp[change.corp_num].open_by_check["closed_period_changed"] += 1
    healed = [r for r in reports if r.repairs]
    if healed:
        text_ = "[REPAIR] " + "; ".join(f"{r.corp_num}: {line}" for r in healed for line in r.repairs)
        with engine.begin() as conn:
            enqueue(conn, settings, alert_id=None, kind="repair", text=text_, now=now,
                    payload={"members": {r.corp_num: r.repairs for r in healed}})  # fmt: skip
    fresh = [r for r in reports if r.new]
    if fresh:
        text_ = "[DISCREPANCY] " + "; ".join(f"{r.corp_num}: {r.new} new" for r in fresh) + f" ({period.label})"
        with engine.begin() as conn:
            enqueue(conn, settings, alert_id=None, kind="discrepancy", text=text_, now=now,
                    payload={"period": period.label, "members": {r.corp_num: dict(r.open_by_check) for r in fresh}})  # fmt: skip
    return reports


__all__ = ["MemberReport", "Period", "reconcile"]
