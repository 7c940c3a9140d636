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
import logging
import threading
import time

from sqlalchemy import Engine, text

from ledger.kst import KST

log = logging.getLogger(__name__)

KINDS = ("payments", "usage", "refunds")

# One row per active member: its latest balance (the (member_id, taken_at) index, newest first),
# its threshold when it has its own, when it was added, and each kind's last success.
MEMBERS_SQL = """
    SELECT m.corp_num, extract(epoch FROM m.created_at)::float8 AS created,
           m.low_balance_threshold::text AS threshold,
           (SELECT s.balance::text FROM balance_snapshots s WHERE s.member_id = m.id
            ORDER BY s.taken_at DESC LIMIT 1) AS balance,
           extract(epoch FROM k.payments)::float8 AS payments,
           extract(epoch FROM k.usage)::float8 AS usage,
           extract(epoch FROM k.refunds)::float8 AS refunds
    FROM members m
    LEFT JOIN (
        SELECT member_id,
               max(last_success_at) FILTER (WHERE kind = 'payments') AS payments,
               max(last_success_at) FILTER (WHERE kind = 'usage') AS usage,
               max(last_success_at) FILTER (WHERE kind = 'refunds') AS refunds
        FROM sync_states GROUP BY member_id
    ) k ON k.member_id = m.id
    WHERE m.active
"""

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


def deadline_day_start(now: dt.datetime, deadline: dt.time | None) -> dt.datetime | None:
    """The start of the Korean day whose histories must all have synced by now: today once the
    deadline (Korean time) has passed, else yesterday. None when there is no deadline."""
    if deadline is None:
        return None
    local = now.astimezone(KST)
    day = local.date() if local.time() >= deadline else local.date() - dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(0), tzinfo=KST)


def read(engine: Engine, *, per_member: bool, per_kind: bool, sync_deadline: dt.time | None,
         nightly_on: bool = True) -> Reading:  # fmt: skip
    started = time.perf_counter()
    taken_at = time.time()
    with engine.connect() as conn:
        # JIT compiling this one statement costs more than running it (0.5 s at 100,000 members).
        conn.execute(text("SET LOCAL statement_timeout = '30s'; SET LOCAL jit = off"))
        rows = conn.execute(text(MEMBERS_SQL)).all()
    day_start = deadline_day_start(dt.datetime.now(dt.UTC), sync_deadline) if nightly_on else None
    cutoff = day_start.timestamp() if day_start else None
    balances, thresholds, oldest_lines, kind_lines = [], [], [], []
    oldest = dict.fromkeys(KINDS)
    never = dict.fromkeys(KINDS, 0)
    never_created: dict[str, float | None] = dict.fromkeys(KINDS)
    late = dict.fromkeys(KINDS, 0)
    for corp, created, threshold, balance, *successes in rows:
        label = f'{{corp_num="{corp}"}} '
        if per_member:
            if balance is not None:
                balances.append(f"ledger_member_balance_points{label}{balance}\n")
            if threshold is not None:
                thresholds.append(f"ledger_member_low_balance_threshold_points{label}{threshold}\n")
        for kind, success in zip(KINDS, successes, strict=True):
            if success is None:
                never[kind] += 1
                if never_created[kind] is None or created < never_created[kind]:
                    never_created[kind] = created
            elif oldest[kind] is None or success < oldest[kind]:
                oldest[kind] = success
            if cutoff is not None and created < cutoff and (success is None or success < cutoff):
                late[kind] += 1
            if per_member and per_kind and success is not None:
                kind_lines.append(f'ledger_member_sync_success_timestamp_seconds{{corp_num="{corp}",kind="{kind}"}} '
                                  f"{success!r}\n")  # fmt: skip
        if per_member and None not in successes:
            oldest_lines.append(f"ledger_member_sync_oldest_success_timestamp_seconds{label}{min(successes)!r}\n")
    parts = []
    if per_member:
        families = [("ledger_member_balance_points", balances),
                    ("ledger_member_low_balance_threshold_points", thresholds),
                    ("ledger_member_sync_oldest_success_timestamp_seconds", oldest_lines)]  # fmt: skip
        if per_kind:
            families.append(("ledger_member_sync_success_timestamp_seconds", kind_lines))
        for name, lines in families:
            parts.append(f"# HELP {name} {HELP[name]}\n# TYPE {name} gauge\n")
            parts += lines
    block = "".join(parts).encode()
    kinds = {k: KindFigures(oldest[k], never[k], never_created[k], late[k]) for k in KINDS}
    return Reading(block, gzip.compress(block, compresslevel=6), kinds, len(rows), taken_at,
                   time.perf_counter() - started)  # fmt: skip


class MemberSeries:
    """The last reading, renewed in the background once older than `refresh` seconds."""

    def __init__(self, engine: Engine, *, refresh: float, per_member: bool = True, per_kind: bool = False,
                 sync_deadline: dt.time | None = None, nightly_on: bool = True) -> None:  # fmt: skip
        self.engine, self.refresh = engine, refresh
        self.options = {"per_member": per_member, "per_kind": per_kind, "sync_deadline": sync_deadline,
                        "nightly_on": nightly_on}  # fmt: skip
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
