"""Reconciliation's side of self-healing: where the ledger does not add up, ask the next sync to
fetch the windows around it again (sync_repairs; ledger.sync.repair walks them whatever the
lookback), and after that sync say what came of it.

- A broken balance chain, a closing balance that disagrees with GetBalance, or a completed
  deposit with no credit: the use history around it. A quarantined row: its own window (a full
  pass for refunds), so a row upstream has fixed, or that new limits accept, is taken in.
- Bounded: at most LEDGER_REPAIR_WINDOWS windows per member a night (Korean day), and a finding
  is re-fetched at most MAX_TRIES times; then it stays a discrepancy that says so.
- Told: "repaired: 1 late row fetched for 2026-11-15" once the finding is gone after the re-fetch;
  or, when it persists, the discrepancy itself says what was re-fetched and that it still does
  not add up.
"""

from __future__ import annotations

import datetime as dt
import json
import math

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from ledger.kst import KST
from ledger.reconcile import checks
from ledger.settings import Settings
from ledger.sync.repair import MAX_FETCH_ATTEMPTS

MAX_TRIES = 3  # re-fetches of one finding, over as many nights
_DATE_FIELD = {"usage": "txDT", "payments": "regDT", "refunds": "reqDT"}


def _day(text_value: str | None) -> dt.date | None:
    """'2026-11-15 10:00:00' (evidence, Korean time) or '20261115...' (a wire date) to a date."""
    if not text_value:
        return None
    digits = text_value.replace("-", "")[:8]
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def window_for(finding: checks.Finding, settings: Settings) -> tuple[str, dt.date | None, dt.date | None] | None:
    """(kind, first day, last day) to fetch again for a finding, or None when fetching cannot help."""
    evidence = finding.evidence
    if finding.check == "balance_chain":
        first, last = _day(evidence["previous"]["tx_dt"]), _day(evidence["row"]["tx_dt"])
        return ("usage", first, last) if first and last else None
    if finding.check == "closing_balance":
        first, last = _day(evidence.get("ledger_row_at")), _day(evidence.get("snapshot_at"))
        return ("usage", first, last) if first and last else None
    if finding.check == "deposit_without_credit":
        at = _day(evidence.get("settled_at"))
        reach = dt.timedelta(days=settings.reconcile_match_days)
        return ("usage", at - reach, at + reach) if at else None
    if finding.check == "quarantined_row":
        kind = evidence.get("kind")
        if kind == "refunds":
            return ("refunds", None, None)
        try:
            day = _day(json.loads(evidence.get("payload", "")).get(_DATE_FIELD.get(kind, "")))
        except (ValueError, AttributeError):
            day = None  # the payload as kept may be cut short: no date, no window
        return (kind, day, day) if day and kind in _DATE_FIELD else None
    return None


def _covers(window: tuple, wanted: tuple) -> bool:
    kind, start, end = window
    if kind != wanted[0]:
        return False
    if start is None:
        return True  # a full refund pass
    return wanted[1] is not None and start <= wanted[1] and wanted[2] <= end


def _windows(first: dt.date | None, last: dt.date | None, settings: Settings) -> int:
    """How many sync windows a repair costs (a full refund pass counts as one)."""
    if first is None or last is None:
        return 1
    return math.ceil(((last - first).days + 1) / settings.sync_window_days)


_KNOWN = text(
    """
    SELECT r.id, r.member_id, r.kind, r.window_start, r.window_end, r.check_name, r.fingerprint, r.requested_at,
           r.fetched_at, r.fetch_attempts, r.found, r.judged_at
    FROM sync_repairs r WHERE r.member_id = ANY(:ids)
    """
)
_JUDGE = text("UPDATE sync_repairs SET outcome = :outcome, judged_at = :now WHERE id = :id")
_REQUEST = text(
    "INSERT INTO sync_repairs (member_id, kind, window_start, window_end, check_name, fingerprint, requested_at) "
    "VALUES (:member_id, :kind, :window_start, :window_end, :check_name, :fingerprint, :now)"
)
_NOTE = text(
    """
    UPDATE discrepancies SET description = description || :note, evidence = evidence || :repair
    WHERE member_id = :member_id AND check_name = :check_name AND fingerprint = :fingerprint AND period = 'all'
    """
).bindparams(bindparam("repair", type_=JSONB))


def _span(start: dt.date | None, end: dt.date | None) -> str:
    if start is None:
        return "the whole refund history"
    return f"{start:%Y-%m-%d}" if start == end else f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"


def _rows(found: dict | None) -> tuple[int, str]:
    found = found or {}
    count = sum(found.values())
    return count, ", ".join(sorted(found))


def review(conn: Connection, findings: dict[int, list[checks.Finding]], reports: dict, settings: Settings,
           now: dt.datetime) -> None:  # fmt: skip
    """For a batch reconciled over all time: judge the repairs a sync has fetched since (a line in
    the report's `repairs`), then ask for the ones the findings call for (in its `refetching`)."""
    ids = sorted(findings)
    known: dict[int, list] = {}
    for row in conn.execute(_KNOWN, {"ids": ids}):
        known.setdefault(row.member_id, []).append(row)
    night = dt.datetime.combine(now.astimezone(KST).date(), dt.time(), tzinfo=KST)
    for member_id, found in findings.items():
        report = reports[member_id]
        current = {(f.check, f.fingerprint): f for f in found}
        rows = known.get(member_id, [])
        for row in rows:
            if row.judged_at is not None:
                continue
            if row.fetched_at is not None:
                _judge(conn, row, current.get((row.check_name, row.fingerprint)), report, now)
            elif row.fetch_attempts >= MAX_FETCH_ATTEMPTS:
                _given_up(conn, row, report, now)
        if settings.repair_windows <= 0:
            continue
        budget = settings.repair_windows - sum(
            _windows(r.window_start, r.window_end, settings) for r in rows if r.requested_at >= night
        )
        # Windows the next sync fetches anyway: a finding inside one needs no request of its own.
        due = [(r.kind, r.window_start, r.window_end) for r in rows
               if r.fetched_at is None and r.fetch_attempts < MAX_FETCH_ATTEMPTS]  # fmt: skip
        for finding in found:
            wanted = window_for(finding, settings)
            if wanted is None or any(_covers(window, wanted) for window in due):
                continue
            mine = [r for r in rows if (r.check_name, r.fingerprint) == (finding.check, finding.fingerprint)]
            if len(mine) >= MAX_TRIES:
                continue  # tried enough: the discrepancy says so
            cost = _windows(wanted[1], wanted[2], settings)
            if cost > budget:
                continue
            budget -= cost
            due.append(wanted)
            kind, start, end = wanted
            conn.execute(_REQUEST, {"member_id": member_id, "kind": kind, "window_start": start, "window_end": end,
                                    "check_name": finding.check, "fingerprint": finding.fingerprint, "now": now})  # fmt: skip
            report.refetching.append(f"re-fetching {kind} {_span(start, end)} at the next sync ({finding.check})")


def _judge(conn: Connection, row, still: checks.Finding | None, report, now: dt.datetime) -> None:
    count, days = _rows(row.found)
    span = _span(row.window_start, row.window_end)
    fetched = row.fetched_at.astimezone(KST)
    if still is None:
        if count:
            line = f"repaired: {count} late row{'s' if count != 1 else ''} fetched for {days}"
        else:
            line = f"repaired: {row.check_name} gone after re-fetching {row.kind} {span}"
        conn.execute(_JUDGE, {"outcome": "repaired", "now": now, "id": row.id})
        report.repairs.append(line)
        return
    brought = f"{count} row{'s' if count != 1 else ''} the ledger lacked ({days})" if count else "no row the ledger lacked"
    note = (f" [re-fetched {row.kind} {span} on {fetched:%Y-%m-%d %H:%M} KST: Popbill sent {brought}, and it "
            "still does not add up]")  # fmt: skip
    conn.execute(_JUDGE, {"outcome": "unrepaired", "now": now, "id": row.id})
    conn.execute(_NOTE, {"note": note, "member_id": row.member_id, "check_name": row.check_name,
                         "fingerprint": row.fingerprint,
                         "repair": {"repair": {"kind": row.kind, "window": span, "fetched_at": f"{fetched:%Y-%m-%d %H:%M}",
                                               "rows_found": row.found or {}}}})  # fmt: skip
    report.repairs.append(f"not repaired: {row.check_name} still found after re-fetching {row.kind} {span}: "
                          f"Popbill sent {brought}")  # fmt: skip


def _given_up(conn: Connection, row, report, now: dt.datetime) -> None:
    span = _span(row.window_start, row.window_end)
    note = f" [re-fetching {row.kind} {span} failed in {row.fetch_attempts} syncs; given up]"
    conn.execute(_JUDGE, {"outcome": "unrepaired", "now": now, "id": row.id})
    conn.execute(_NOTE, {"note": note, "member_id": row.member_id, "check_name": row.check_name,
                         "fingerprint": row.fingerprint,
                         "repair": {"repair": {"kind": row.kind, "window": span, "failed_syncs": row.fetch_attempts}}})  # fmt: skip
    report.repairs.append(f"not repaired: re-fetching {row.kind} {span} failed in {row.fetch_attempts} syncs "
                          f"(see `ledger status`); {row.check_name} stays open")  # fmt: skip
