"""The checks, as plain functions from a member's rows to findings. No database here."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import NamedTuple

from ledger.kst import KST


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str
    fingerprint: str
    description: str
    expected: Decimal | None = None
    actual: Decimal | None = None
    evidence: dict = dataclasses.field(default_factory=dict)

    @property
    def difference(self) -> Decimal | None:
        if self.expected is None or self.actual is None:
            return None
        return self.actual - self.expected


class UsageRow(NamedTuple):
    """A tuple, not a dataclass: the reconciliation builds millions of them."""

    key: str  # row_key:occurrence
    tx_dt: dt.datetime
    tx_type: int | None
    tx_point: Decimal  # the magnitude, whatever sign the wire used
    balance: Decimal
    direction: int | None  # from tx_types; None when the type is unknown
    category: str | None


@dataclasses.dataclass(frozen=True)
class Settled:
    """A completed payment or refund, with the time its ledger row should be near."""

    key: str
    points: Decimal
    at: dt.datetime
    since: dt.datetime  # the window its ledger row must fall in
    until: dt.datetime


def _kst(moment: dt.datetime) -> str:
    return moment.astimezone(KST).strftime("%Y-%m-%d %H:%M:%S")


def _follows(previous: UsageRow, row: UsageRow) -> bool:
    signs = (row.direction,) if row.direction else (1, -1)
    return any(previous.balance + sign * row.tx_point == row.balance for sign in signs)


def _follows_flipped(previous: UsageRow, row: UsageRow) -> bool:
    """The chain holds only with the sign opposite to the one tx_types gives the row."""
    return bool(row.direction) and row.tx_point != 0 and previous.balance - row.direction * row.tx_point == row.balance


def _sign_disagrees(previous: UsageRow, row: UsageRow) -> Finding:
    chain = "credit" if row.balance > previous.balance else "debit"
    declared = "credit" if row.direction > 0 else "debit"
    return Finding(
        "tx_sign",
        row.key,
        f"at {_kst(row.tx_dt)} a {row.category or f'type {row.tx_type}'} of {row.tx_point} is a {declared} by tx_types "
        f"but a {chain} by the balance chain ({previous.balance} -> {row.balance}); the statement follows the chain",
        previous.balance + row.direction * row.tx_point,
        row.balance,
        {"row": row.key, "tx_type": row.tx_type, "tx_point": str(row.tx_point), "previous_balance": str(previous.balance),
         "balance": str(row.balance), "tx_types_direction": row.direction},
    )  # fmt: skip


def balance_chain(rows: list[UsageRow], in_period: Callable[[dt.datetime], bool]) -> list[Finding]:
    """Each row's balance must be the previous balance plus or minus its txPoint. Rows of the
    same second are put in whatever order the chain needs; the sign comes from tx_types, or
    from the chain itself when the type is unknown. A break means a missing or doubled row."""
    findings, previous = [], None
    count, start = len(rows), 0
    while start < count:
        row = rows[start]
        end = start + 1
        while end < count and rows[end].tx_dt == row.tx_dt:
            end += 1
        # Most rows are alone in their second and follow the one before: what _follows says,
        # without its generator (the reconciliation runs this for millions of rows).
        if end == start + 1 and previous is not None:
            sign = row.direction
            if (
                previous.balance + sign * row.tx_point == row.balance
                if sign
                else previous.balance + row.tx_point == row.balance or previous.balance - row.tx_point == row.balance
            ):
                previous = row
                start = end
                continue
        previous = _chain_second(rows[start:end], previous, in_period, findings)
        start = end
    return findings


def _chain_second(
    waiting: list[UsageRow], previous: UsageRow | None, in_period: Callable[[dt.datetime], bool], findings: list
) -> UsageRow:
    """Chain one second's rows after `previous`, adding to `findings`; returns the last row chained."""
    while waiting:
        if previous is None:
            previous = waiting.pop(0)
            continue
        row = next((r for r in waiting if _follows(previous, r)), None)
        flipped = None if row is not None else next((r for r in waiting if _follows_flipped(previous, r)), None)
        if flipped is not None:
            row = flipped
            if in_period(row.tx_dt):
                findings.append(_sign_disagrees(previous, row))
        elif row is None:
            row = waiting[0]
            expected = previous.balance + (row.direction or -1) * row.tx_point
            if in_period(row.tx_dt):
                findings.append(
                    Finding(
                        "balance_chain",
                        row.key,
                        f"the balance chain breaks between {_kst(previous.tx_dt)} and {_kst(row.tx_dt)}: "
                        f"after {previous.balance}, a {row.category or f'type {row.tx_type}'} of {row.tx_point} "
                        f"should leave {expected}, but the row says {row.balance}; a row is missing or doubled "
                        "between them",
                        expected,
                        row.balance,
                        {
                            "previous": {
                                "tx_dt": _kst(previous.tx_dt),
                                "balance": str(previous.balance),
                                "row": previous.key,
                            },
                            "row": {
                                "tx_dt": _kst(row.tx_dt),
                                "tx_type": row.tx_type,
                                "tx_point": str(row.tx_point),
                                "balance": str(row.balance),
                                "row": row.key,
                            },
                        },
                    )  # fmt: skip
                )
        waiting.remove(row)
        previous = row
    return previous


def closing_balance(rows: list[UsageRow], snapshot_balance: Decimal, snapshot_at: dt.datetime) -> list[Finding]:
    """The ledger's balance as of a GetBalance snapshot must equal it (rows after the snapshot
    are left out: they happened later)."""
    before = [r for r in rows if r.tx_dt <= snapshot_at]
    if not before:
        return []
    ours = before[-1].balance
    if ours == snapshot_balance:
        return []
    return [
        Finding(
            "closing_balance",
            "closing",
            f"Popbill reported {snapshot_balance} at {_kst(snapshot_at)}; the ledger's balance then is {ours}",
            snapshot_balance,
            ours,
            {
                "snapshot_at": _kst(snapshot_at),
                "snapshot_balance": str(snapshot_balance),
                "ledger_row": before[-1].key,
                "ledger_row_at": _kst(before[-1].tx_dt),
            },
        )  # fmt: skip
    ]


def match(
    settled: list[Settled], rows: list[UsageRow], *, check_settled: str, check_row: str, what: str,
    in_period: Callable[[dt.datetime], bool], covered: Callable[[dt.datetime], bool],
) -> list[Finding]:  # fmt: skip
    """Pair each settled item with one ledger row of the same points inside its time window,
    nearest first; what is left unpaired on either side is a finding."""
    unpaired = list(rows)
    findings = []
    for item in sorted(settled, key=lambda s: s.at):
        candidates = [r for r in unpaired if r.tx_point == item.points and item.since <= r.tx_dt <= item.until]
        if candidates:
            unpaired.remove(min(candidates, key=lambda r: abs(r.tx_dt - item.at)))
        elif in_period(item.at) and covered(item.at):
            findings.append(
                Finding(
                    check_settled,
                    item.key,
                    f"a completed {what} of {item.points} points at {_kst(item.at)} "
                    "has no matching row in the use history",
                    item.points,
                    Decimal(0),
                    {"settled_at": _kst(item.at), "points": str(item.points), "item": item.key},
                )  # fmt: skip
            )
    for row in unpaired:
        if in_period(row.tx_dt) and covered(row.tx_dt):
            findings.append(
                Finding(
                    check_row,
                    row.key,
                    f"a {row.category} of {row.tx_point} points at {_kst(row.tx_dt)} has no completed {what}",
                    Decimal(0),
                    row.tx_point,
                    {"tx_dt": _kst(row.tx_dt), "tx_point": str(row.tx_point), "row": row.key},
                )  # fmt: skip
            )
    return findings


def aging(
    items: Iterable[tuple[str, str, Decimal, dt.datetime]], now: dt.datetime, limit: dt.timedelta
) -> list[Finding]:
    """(kind, key, points, requested_at) still pending after `limit`."""
    return [
        Finding(
            "pending_aging",
            key,
            f"a {kind} of {points} points requested {_kst(at)} is still pending after {(now - at).days} days",
            None,
            None,
            {"kind": kind, "requested_at": _kst(at), "points": str(points)},
        )  # fmt: skip
        for kind, key, points, at in items
        if now - at > limit
    ]


def stale_syncs(last_success: dict[str, dt.datetime | None], now: dt.datetime, limit: dt.timedelta) -> list[Finding]:
    findings = []
    for kind, at in sorted(last_success.items()):
        if at is None or now - at > limit:
            when = "never synced" if at is None else f"last synced {_kst(at)}"
            findings.append(Finding("sync_stale", f"sync:{kind}", f"the {kind} history is stale: {when}", None, None,
                                    {"kind": kind, "last_success_at": at and _kst(at)}))  # fmt: skip
    return findings


def quarantined(rows: Iterable) -> list[Finding]:
    """Each history row Popbill sent that screening refused: the ledger lacks it (or Popbill
    sent garbage) until someone looks. Rows: kind, fingerprint, reason, payload, times_seen,
    first_seen_at, last_seen_at."""
    return [
        Finding(
            "quarantined_row",
            f"{r.kind}:{r.fingerprint}",
            f"a {r.kind} row from Popbill was refused and kept in quarantined_rows: {r.reason} "
            f"(seen {r.times_seen} times since {_kst(r.first_seen_at)})",
            None,
            None,
            {
                "kind": r.kind,
                "reason": r.reason,
                "first_seen_at": _kst(r.first_seen_at),
                "last_seen_at": _kst(r.last_seen_at),
                "times_seen": r.times_seen,
                "payload": r.payload[:500],
            },
        )  # fmt: skip
        for r in rows
    ]
