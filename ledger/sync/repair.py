"""The sync's side of self-healing: windows reconciliation asked to fetch again (sync_repairs,
written by ledger.reconcile.repair) are walked before the usual ones, whatever the lookback;
once the kind's sync succeeds each is marked fetched, with the rows it brought that the ledger
lacked, by Korean date. A quarantined row of a re-fetched window that upstream no longer sends
(it was fixed, or the limits changed and it passed) leaves the quarantine.

Bounded: a repair window is taken by at most MAX_FETCH_ATTEMPTS syncs, so a window upstream
keeps failing cannot stop the member's syncs for more than that; reconciliation bounds how many
are asked for (LEDGER_REPAIR_WINDOWS per member a night).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from ledger.kst import KST
from ledger.sync.windows import windows

MAX_FETCH_ATTEMPTS = 3

# Also in the sync's start statement (ledger.sync.sql.START), as whether any is due.
_TAKE = text(
    """
    UPDATE sync_repairs SET fetch_attempts = fetch_attempts + 1
    WHERE member_id = :m AND kind = :kind AND fetched_at IS NULL AND fetch_attempts < :attempts
    RETURNING id, window_start, window_end
    """
)

# The first-seen time and the date of each kind's rows, to tell which rows a re-fetch brought.
_DATED = {"usage": ("usages", "tx_dt"), "payments": ("payments", "reg_dt"), "refunds": ("refunds", "req_dt")}
_QUARANTINE_DATE = {"usage": "txDT", "payments": "regDT", "refunds": "reqDT"}


@dataclasses.dataclass
class Repairs:
    """The repair windows one sync of one (member, kind) took."""

    windows: list[tuple[int, dt.date | None, dt.date | None]]  # (id, start, end); refunds: no dates
    started_at: dt.datetime  # before the first re-fetch: rows first seen since came with it


def take(engine, member_id: int, kind: str) -> Repairs:
    started_at = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        rows = conn.execute(_TAKE, {"m": member_id, "kind": kind, "attempts": MAX_FETCH_ATTEMPTS}).all()
    return Repairs([(r.id, r.window_start, r.window_end) for r in rows], started_at)


def with_repairs(job, spans: list[tuple[dt.date, dt.date]]) -> list[tuple[dt.date, dt.date]]:
    """`spans` (the usual walk, oldest first) with the due repair windows before them: the parts
    of each that the walk does not cover, merged, in windows of at most the sync's size."""
    m = job.member
    job.repairs = take(m.engine, m.member_id, job.kind)
    walk_start = spans[0][0] if spans else m.today + dt.timedelta(days=1)
    wanted = sorted(
        (start, min(end, walk_start - dt.timedelta(days=1), m.today))
        for _, start, end in job.repairs.windows
        if start is not None and start < walk_start
    )
    merged: list[list[dt.date]] = []
    for start, end in wanted:
        if merged and start <= merged[-1][1] + dt.timedelta(days=1):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    extra = [span for start, end in merged for span in windows(start, end, m.options.window_days)]
    return extra + spans


def full_pass(job) -> bool:
    """Refunds: repairs due are met by a full pass (their history has no date filter)."""
    job.repairs = take(job.member.engine, job.member.member_id, job.kind)
    return bool(job.repairs.windows)


_MARK = text(
    "UPDATE sync_repairs SET fetched_at = now(), fetch_started_at = :started, found = :found, outcome = NULL, "
    "judged_at = NULL WHERE id = :id"
).bindparams(bindparam("found", type_=JSONB))


def finish(job) -> None:
    """After the kind's sync succeeded: each repair window fetched, with what it brought; the
    quarantined rows of those windows not seen in this sync gone from the quarantine."""
    repairs: Repairs | None = getattr(job, "repairs", None)
    if not repairs or not repairs.windows:
        return
    m, kind = job.member, job.kind
    table, column = _DATED[kind]
    with m.engine.begin() as conn:
        for repair_id, start, end in repairs.windows:
            where = "member_id = :m AND first_seen_at >= :started"
            params = {"m": m.member_id, "started": repairs.started_at}
            if start is not None:
                where += f" AND {column} >= :since AND {column} < :until"
                params |= {"since": _kst_midnight(start), "until": _kst_midnight(end + dt.timedelta(days=1))}
            found = dict(
                conn.execute(
                    text(f"SELECT to_char({column} AT TIME ZONE 'Asia/Seoul', 'YYYY-MM-DD'), count(*) "
                         f"FROM {table} WHERE {where} GROUP BY 1 ORDER BY 1"),  # fmt: skip
                    params,
                ).all()
            )
            conn.execute(_MARK, {"id": repair_id, "started": repairs.started_at, "found": found})
            _release_quarantine(conn, m.member_id, kind, start, end, repairs.started_at)


def _release_quarantine(conn, member_id: int, kind: str, start, end, started_at: dt.datetime) -> None:
    """Rows quarantined in this window that the re-fetch did not send again as they were."""
    stale = conn.execute(
        text("SELECT id, payload FROM quarantined_rows WHERE member_id = :m AND kind = :kind AND last_seen_at < :t"),
        {"m": member_id, "kind": kind, "t": started_at},
    ).all()
    gone = [row.id for row in stale if _dated_within(row.payload, _QUARANTINE_DATE[kind], start, end)]
    if gone:
        conn.execute(text("DELETE FROM quarantined_rows WHERE id = ANY(:ids)"), {"ids": gone})


def _dated_within(payload: str, field: str, start: dt.date | None, end: dt.date | None) -> bool:
    if start is None:
        return True  # a full pass of a history without dates saw every row there is
    try:
        stamp = json.loads(payload).get(field)
        day = dt.date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]))
    except (ValueError, TypeError, AttributeError, IndexError):
        return False  # no date to place it by: it stays until someone looks
    return start <= day <= end


def _kst_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=KST)
