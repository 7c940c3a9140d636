"""The per-member series and the sync figures over every member, read in one statement and kept
between scrapes.

At 100,000 members that read costs a few tenths of a second of PostgreSQL and Python, too much
for every scrape of a loaded machine; and what it reads changes at most at a balance check
(every 30 minutes) or a sync. So a scrape serves the last reading and, once it is older than
LEDGER_METRICS_REFRESH seconds, asks for a new one in the background: no scrape waits for it
(the server asks for the first one as it starts). The values are times (seconds since the epoch), not ages, so a reading kept a
minute says exactly what it said when it was taken; the ages the rules read are worked out at
scrape time. The rendered lines are kept gzipped too, so a scrape compresses only its own small
part (a gzip stream may hold several members; Prometheus, curl and Python read them whole)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import logging
import threading
import time

from sqlalchemy import Engine, text

from ledger.kst import KST

log = logging.getLogger(__name__)

KINDS = ("payments", "usage", "refunds")

# The per-member lines are rendered by PostgreSQL itself (string_agg): it does it while this
# process waits, so the reading holds Python's lock for milliseconds, not the second that
# formatting 200,000 lines here would (a scrape served meanwhile would wait for it).
# Every label value is a ten-digit CorpNum or a fixed kind, so nothing needs escaping.
READING_SQL = """
    WITH m AS MATERIALIZED (
        SELECT m.id, m.corp_num, m.created_at, m.low_balance_threshold, k.payments, k.usage, k.refunds
        FROM members m
        LEFT JOIN (
            SELECT member_id,
                   max(last_success_at) FILTER (WHERE kind = 'payments') AS payments,
                   max(last_success_at) FILTER (WHERE kind = 'usage') AS usage,
                   max(last_success_at) FILTER (WHERE kind = 'refunds') AS refunds
            FROM sync_states GROUP BY member_id
        ) k ON k.member_id = m.id
        WHERE m.active
    ), by_kind AS (
        SELECT v.kind, extract(epoch FROM min(v.success))::float8 AS oldest,
               count(*) FILTER (WHERE v.success IS NULL) AS never,
               extract(epoch FROM min(m.created_at) FILTER (WHERE v.success IS NULL))::float8 AS waiting,
               count(*) FILTER (WHERE m.created_at < :cutoff AND (v.success IS NULL OR v.success < :cutoff)) AS late
        FROM m CROSS JOIN LATERAL (VALUES ('payments', m.payments), ('usage', m.usage), ('refunds', m.refunds))
            AS v(kind, success)
        GROUP BY v.kind
    )
    SELECT
        (SELECT count(*) FROM m) AS members,
        (SELECT json_agg(json_build_array(kind, oldest, never, waiting, late)) FROM by_kind)::text AS kinds,
        CASE WHEN :per_member THEN
            (SELECT string_agg('ledger_member_balance_points{corp_num="' || m.corp_num || '"} ' || b.balance::text,
                               E'\\n')
             FROM m CROSS JOIN LATERAL (SELECT s.balance FROM balance_snapshots s WHERE s.member_id = m.id
                                        ORDER BY s.taken_at DESC LIMIT 1) b)
        END AS balances,
        CASE WHEN :per_member THEN
            (SELECT string_agg('ledger_member_low_balance_threshold_points{corp_num="' || corp_num || '"} '
                               || low_balance_threshold::text, E'\\n')
             FROM m WHERE low_balance_threshold IS NOT NULL)
        END AS thresholds,
        CASE WHEN :per_member THEN
            (SELECT string_agg('ledger_member_sync_oldest_success_timestamp_seconds{corp_num="' || corp_num || '"} '
                               || extract(epoch FROM least(payments, usage, refunds))::float8::text, E'\\n')
             FROM m WHERE payments IS NOT NULL AND usage IS NOT NULL AND refunds IS NOT NULL)
        END AS oldest,
        CASE WHEN :per_member AND :per_kind THEN
            (SELECT string_agg('ledger_member_sync_success_timestamp_seconds{corp_num="' || m.corp_num || '",kind="'
                               || v.kind || '"} ' || extract(epoch FROM v.success)::float8::text, E'\\n')
             FROM m CROSS JOIN LATERAL (VALUES ('payments', m.payments), ('usage', m.usage), ('refunds', m.refunds))
                 AS v(kind, success)
             WHERE v.success IS NOT NULL)
        END AS per_kind
"""
FAMILIES = ("ledger_member_balance_points", "ledger_member_low_balance_threshold_points",
            "ledger_member_sync_oldest_success_timestamp_seconds", "ledger_member_sync_success_timestamp_seconds")

HELP = {
    "ledger_member_balance_points": "Latest balance reading of each active member, in points.",
    "ledger_member_low_balance_threshold_points":
        "A member's own low-balance threshold, for members that have one (the others: ledger_default_low_balance_threshold_points).",
    "ledger_member_sync_oldest_success_timestamp_seconds":
        "When the member's stalest history last synced successfully (absent until every kind has).",
    "ledger_member_sync_success_timestamp_seconds":
        "When a member's history of one kind last synced successfully (LEDGER_METRICS_SYNC_PER_KIND).",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class KindFigures:
    oldest_success: float | None  # the stalest member's last success (epoch seconds)
    never: int  # active members never synced successfully
    never_oldest_created: float | None  # when the longest-waiting of them was added
    late: int  # histories not synced since the Korean day of the nightly deadline began


@dataclasses.dataclass(frozen=True)
class Reading:
    block: bytes  # the per-member families, text lines (the same in both exposition formats)
    block_gzip: bytes
    kinds: dict[str, KindFigures]
    members: int
    taken_at: float  # time.time()
    took: float  # seconds the reading cost (wall)
    extra: dict = dataclasses.field(default_factory=dict)  # what `extra` read in the same round


def deadline_day_start(now: dt.datetime, deadline: dt.time | None) -> dt.datetime | None:
    """The start of the Korean day whose histories must all have synced by now: today once the
    deadline (Korean time) has passed, else yesterday. None when there is no deadline."""
    if deadline is None:
        return None
    local = now.astimezone(KST)
    day = local.date() if local.time() >= deadline else local.date() - dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(0), tzinfo=KST)


def read(engine: Engine, *, per_member: bool, per_kind: bool, sync_deadline: dt.time | None,
         nightly_on: bool = True, extra=None) -> Reading:  # fmt: skip
    """`extra(conn)`: other figures too slow to read at every scrape (counts over large tables)."""
    started = time.perf_counter()
    taken_at = time.time()
    day_start = deadline_day_start(dt.datetime.now(dt.UTC), sync_deadline) if nightly_on else None
    with engine.connect() as conn:
        # JIT compiling this statement costs more than running it (0.5 s at 100,000 members).
        conn.execute(text("SET LOCAL statement_timeout = '60s'; SET LOCAL jit = off"))
        row = conn.execute(text(READING_SQL), {"cutoff": day_start, "per_member": per_member,
                                               "per_kind": per_kind}).one()  # fmt: skip
        found_extra = extra(conn) if extra else {}
    found = {k: KindFigures(oldest, never, waiting, late) for k, oldest, never, waiting, late in json.loads(row.kinds or "[]")}
    kinds = {k: found.get(k, KindFigures(None, 0, None, 0)) for k in KINDS}
    blocks = (row.balances, row.thresholds, row.oldest, row.per_kind) if per_member else ()
    parts = []
    for name, lines in zip(FAMILIES, blocks, strict=False):
        if name == FAMILIES[3] and not per_kind:
            continue
        parts.append(f"# HELP {name} {HELP[name]}\n# TYPE {name} gauge\n")
        if lines:
            parts += [lines, "\n"]
    block = "".join(parts).encode()
    return Reading(block, gzip.compress(block, compresslevel=6), kinds, row.members, taken_at,
                   time.perf_counter() - started, found_extra)  # fmt: skip


class MemberSeries:
    """The last reading, renewed in the background once older than `refresh` seconds."""

    def __init__(self, engine: Engine, *, refresh: float, per_member: bool = True, per_kind: bool = False,
                 sync_deadline: dt.time | None = None, nightly_on: bool = True, extra=None) -> None:  # fmt: skip
        self.engine, self.refresh = engine, refresh
        self.options = {"per_member": per_member, "per_kind": per_kind, "sync_deadline": sync_deadline,
                        "nightly_on": nightly_on, "extra": extra}  # fmt: skip
        self._reading: Reading | None = None
        self._lock = threading.Lock()  # one reading at a time
        self._renewing = False

    def _read(self) -> Reading | None:
        try:
            reading = read(self.engine, **self.options)
        except Exception as exc:  # noqa: BLE001 - the scrape answers without these series
            log.warning("could not read the per-member series: %s", type(exc).__name__)
            reading = None
        self._reading = reading  # a failed reading drops the old one: never stale numbers
        return reading

    def _renew(self) -> None:
        try:
            with self._lock:
                self._read()
        finally:
            self._renewing = False

    @property
    def current(self) -> Reading | None:
        return self._reading

    def get(self, *, wait: bool = False) -> Reading | None:
        """The last reading; a new one is asked for in the background when it is older than
        `refresh` (or missing). A scrape never waits for it (it answers without the per-member
        series until the first reading is in); `wait` reads now when there is none (tests, tools)."""
        reading = self._reading
        if reading is None and wait:
            with self._lock:
                return self._reading or self._read()
        if (reading is None or time.time() - reading.taken_at >= self.refresh) and not self._renewing:
            self._renewing = True
            threading.Thread(target=self._renew, name="metrics-refresh", daemon=True).start()
        return reading
