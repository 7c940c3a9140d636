"""Gauges read from PostgreSQL, so every process, and a restarted one, gives the same answer.
The partner-wide figures are read at every scrape (each query reads an index or a small table);
the per-member series and the sync figures over every member come from ledger.metrics.member_series,
read in one statement and renewed in the background. bench/metrics_bench.py scrapes it with a
real Prometheus at 100,000 members and prints the plans."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text

from ledger.alerts.models import ALERT_STATES, CHANNELS, NOTIFICATION_STATUSES
from ledger.alerts.service import RULES
from ledger.db.registry import metadata
from ledger.metrics.member_series import MemberSeries
from ledger.pending.models import KINDS as TRACKED_KINDS
from ledger.pending.models import STATES as TRACKED_STATES
from ledger.reconcile.models import CHECKS
from ledger.settings import Settings

# Below this many rows (by the planner's estimate) a table's rows are counted exactly; above it
# the estimate (pg_class.reltuples, kept by autovacuum) stands, as counting would be slow.
EXACT_COUNT_BELOW = 200_000

QUERIES = {
    "partner_balance": """
        SELECT balance FROM balance_snapshots WHERE member_id IS NULL ORDER BY member_id, taken_at DESC LIMIT 1
    """,
    "members": "SELECT active, count(*) FROM members GROUP BY active",
    "table_estimates": """
        SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY(:tables)
    """,
    "pending": """
        SELECT kind, state, count(*) AS n,
               extract(epoch FROM now() - min(requested_at)) AS oldest
        FROM tracked_items GROUP BY kind, state
    """,
    "discrepancies": "SELECT check_name, count(*) FROM discrepancies WHERE status = 'open' GROUP BY check_name",
    "notifications": """
        SELECT channel, status, count(*) AS n,
               extract(epoch FROM now() - min(created_at)) AS oldest
        FROM notifications WHERE status IN ('pending', 'failed') GROUP BY channel, status
    """,
    "notifications_sent": "SELECT channel, count(*) FROM notifications WHERE status = 'sent' GROUP BY channel",
    "alerts": "SELECT rule, state, count(*) FROM alerts GROUP BY rule, state",
    "heartbeats": """
        SELECT name, extract(epoch FROM now() - started_at) AS age,
               extract(epoch FROM now() - succeeded_at) AS succeeded_age
        FROM heartbeats
    """,
}



def ledger_tables() -> list[str]:
    return sorted(t.name for t in metadata.sorted_tables if not t.info.get("reference_data"))


class LedgerCollector(Collector):
    """The families of /metrics: small tables read at every scrape, and what grows with the
    members (sync figures, counts over large tables) from the last per-member reading. A
    database that cannot be read gives ledger_database_up 0 and nothing else, never stale
    numbers (/metrics/members keeps its last reading until the next one fails, at most
    LEDGER_METRICS_REFRESH seconds)."""

    def __init__(self, engine: Engine, *, members: MemberSeries | None = None, config: dict[str, float] | None = None,
                 wait: bool = False) -> None:  # fmt: skip
        self.engine = engine
        self.members = members
        self.config = config or {}
        self.wait = wait  # read the per-member series now when there is no reading yet

    def describe(self) -> Iterator:
        return iter(())  # collected fresh each time; no fixed description to register

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("ledger_database_up", "1 when the ledger database could be read for this scrape.")
        try:
            families = self._read()
        except Exception:  # noqa: BLE001 - the scrape itself must still answer
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
        out: list[GaugeMetricFamily] = []
        if self.members is not None:
            self.members.get(wait=self.wait)  # the reading the families below come from (asked for if old)
        with self.engine.connect() as conn:
            conn.execute(text("SET LOCAL statement_timeout = '10s'; SET LOCAL jit = off"))

            def rows(name: str, **params):
                return conn.execute(text(QUERIES[name]), params).all()

            partner = GaugeMetricFamily("ledger_partner_balance_points", "Latest reading of the partner's own balance, in points.")  # fmt: skip
            for (value,) in rows("partner_balance"):
                partner.add_metric([], float(value))
            out.append(partner)

            pending = GaugeMetricFamily("ledger_pending_items", "Tracked settle and refund codes by state.",
                                        labels=["kind", "state"])  # fmt: skip
            pending_age = GaugeMetricFamily("ledger_pending_oldest_age_seconds",
                                            "Age of the oldest item still pending, per kind.", labels=["kind"])  # fmt: skip
            found = {(k, s): (n, o) for k, s, n, o in rows("pending")}
            for kind in TRACKED_KINDS:
                for state in TRACKED_STATES:
                    pending.add_metric([kind, state], found.get((kind, state), (0, None))[0])
                if (kind, "pending") in found:
                    pending_age.add_metric([kind], float(found[(kind, "pending")][1]))
            out += [pending, pending_age]

            open_ = GaugeMetricFamily("ledger_discrepancies_open", "Open reconciliation discrepancies by check.",
                                      labels=["check"])  # fmt: skip

            found = dict(rows("discrepancies"))
            for check in sorted(set(CHECKS) | set(found)):
                open_.add_metric([check], found.get(check, 0))
            out.append(open_)

            outbox = GaugeMetricFamily("ledger_notifications", "Outbox notifications by channel and state.",
                                       labels=["channel", "state"])  # fmt: skip
            unsent_age = GaugeMetricFamily("ledger_notifications_oldest_unsent_age_seconds",
                                           "Age of the oldest notification not yet sent, per channel.", labels=["channel"])  # fmt: skip
            found = {(c, s): (n, o) for c, s, n, o in rows("notifications")}
            sent = dict(self._slow("notifications_sent"))
            for channel in CHANNELS:
                for state in NOTIFICATION_STATUSES:
                    value = sent.get(channel, 0) if state == "sent" else found.get((channel, state), (0, None))[0]
                    outbox.add_metric([channel, state], value)
                ages = [o for (c, _), (_, o) in found.items() if c == channel]
                if ages:
                    unsent_age.add_metric([channel], float(max(ages)))
            out += [outbox, unsent_age]

            beat_age = GaugeMetricFamily("ledger_heartbeat_age_seconds",
                                         "Seconds since a heartbeat: 'beat' (every tick) or 'task:<name>' (a scheduled task's last start).",
                                         labels=["name"])  # fmt: skip
            finished = GaugeMetricFamily("ledger_task_last_success_age_seconds",
                                         "Seconds since a scheduled task last finished successfully.", labels=["name"])  # fmt: skip
            for name, seconds, succeeded_seconds in rows("heartbeats"):
                beat_age.add_metric([name], float(seconds))
                if succeeded_seconds is not None:
                    finished.add_metric([name], float(succeeded_seconds))
            out += [beat_age, finished]
        out += self._configured()
        out += self._counted()
        out += self._sync_figures()
        return out

    def _slow(self, name: str) -> list:
        reading = self.members.current if self.members else None
        return (reading.extra if reading else {}).get(name, [])

    def _counted(self) -> list[GaugeMetricFamily]:
        """Counts over tables that grow with the members (read with the per-member series)."""
        reading = self.members.current if self.members else None
        if reading is None or not reading.extra:
            return []
        members = GaugeMetricFamily("ledger_members", "Members by whether they are active.", labels=["active"])
        counts = {bool(a): n for a, n in reading.extra["members"]}
        for active in (True, False):
            members.add_metric([str(active).lower()], counts.get(active, 0))
        held = GaugeMetricFamily("ledger_table_rows",
                                 f"Rows held per table (exact below {EXACT_COUNT_BELOW:,} rows, else the planner's estimate).",
                                 labels=["table"])  # fmt: skip
        for table, count in reading.extra["table_rows"]:
            held.add_metric([table], float(count))
        alerts = GaugeMetricFamily("ledger_alerts", "Alerts by rule and state.", labels=["rule", "state"])

        found = {(r, s): n for r, s, n in reading.extra["alerts"]}
        for rule in sorted(set(RULES) | {r for r, _ in found}):
            for state in ALERT_STATES:
                alerts.add_metric([rule, state], found.get((rule, state), 0))
        return [members, held, alerts]

    def _configured(self) -> list[GaugeMetricFamily]:
        """The thresholds the rules compare with, from the ledger's own settings (no literals in the rules)."""
        out = []
        for name, (help_text, value) in sorted(self.config.items()):
            family = GaugeMetricFamily(name, help_text)
            family.add_metric([], float(value))
            out.append(family)
        return out

    def _sync_figures(self) -> list[GaugeMetricFamily]:
        if self.members is None:
            return []
        reading = self.members.get(wait=self.wait)
        if reading is None:
            return []
        now = time.time()
        age = GaugeMetricFamily("ledger_metrics_member_reading_age_seconds",
                                "Seconds since the per-member series and sync figures were read (LEDGER_METRICS_REFRESH).")  # fmt: skip
        age.add_metric([], now - reading.taken_at)
        took = GaugeMetricFamily("ledger_metrics_member_reading_duration_seconds",
                                 "Seconds the last reading of the per-member series took.")  # fmt: skip
        took.add_metric([], reading.took)
        oldest = GaugeMetricFamily("ledger_sync_oldest_age_seconds",
                                   "Seconds since the last successful sync of the stalest active member, per kind.",
                                   labels=["kind"])  # fmt: skip
        never = GaugeMetricFamily("ledger_sync_never_succeeded_members",
                                  "Active members whose history of this kind has never synced successfully.",
                                  labels=["kind"])  # fmt: skip
        waiting = GaugeMetricFamily("ledger_sync_never_succeeded_oldest_age_seconds",
                                    "Seconds since the longest-waiting active member that never synced this kind was added.",
                                    labels=["kind"])  # fmt: skip
        late = GaugeMetricFamily("ledger_nightly_sync_late_histories",
                                 "Past LEDGER_HEALTH_SYNC_DEADLINE (KST): active members' histories not synced since that "
                                 "Korean day began (0 before the deadline or with no deadline).", labels=["kind"])  # fmt: skip
        for kind, figures in reading.kinds.items():
            if figures.oldest_success is not None:
                oldest.add_metric([kind], max(0.0, now - figures.oldest_success))
            never.add_metric([kind], figures.never)
            if figures.never_oldest_created is not None:
                waiting.add_metric([kind], max(0.0, now - figures.never_oldest_created))
            late.add_metric([kind], figures.late)
        return [age, took, oldest, never, waiting, late]


def slow_figures(conn) -> dict[str, list]:
    """The counts over large tables, read with the per-member series rather than at every scrape."""

    def rows(name: str, **params):
        return [tuple(r) for r in conn.execute(text(QUERIES[name]), params).all()]

    tables = ledger_tables()
    estimates = dict(rows("table_estimates", tables=tables))
    table_rows = []
    for table in tables:
        estimate = estimates.get(table, -1)
        if estimate < EXACT_COUNT_BELOW:
            estimate = conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()  # noqa: S608 - our own names
        table_rows.append((table, estimate))
    return {"members": rows("members"), "table_rows": table_rows, "notifications_sent": rows("notifications_sent"),
            "alerts": rows("alerts")}  # fmt: skip


def config_gauges(settings: Settings) -> dict[str, tuple[str, float]]:
    return {
        "ledger_partner_threshold_points": ("The partner's balance threshold (LEDGER_PARTNER_THRESHOLD), in points.",
                                            float(settings.partner_threshold)),
        "ledger_default_low_balance_threshold_points": (
            "The low-balance threshold of members without their own (LEDGER_ALERT_THRESHOLD), in points.",
            float(settings.alert_threshold)),
        "ledger_sync_max_age_seconds": ("How old a history's last sync may be (LEDGER_RECONCILE_MAX_SYNC_AGE).",
                                        float(settings.reconcile_max_sync_age)),
        "ledger_health_beat_max_age_seconds": ("Seconds without a beat heartbeat before beat counts as down "
                                               "(LEDGER_HEALTH_BEAT_MAX_AGE).", float(settings.health_beat_max_age)),
    }  # fmt: skip


class LedgerMetrics:
    """What one `ledger metrics serve` process answers: the collector for the partner-wide
    figures, and the per-member reading kept between scrapes."""

    def __init__(self, engine: Engine, settings: Settings, *, wait: bool = False) -> None:

        self.wait = wait
        self.members = MemberSeries(
            engine, refresh=settings.metrics_refresh, per_member=settings.metrics_per_member,
            per_kind=settings.metrics_sync_per_kind, sync_deadline=settings.health_sync_deadline,
            nightly_on=settings.schedule_sync.strip().lower() != "off", extra=slow_figures,
        )  # fmt: skip
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LedgerCollector(engine, members=self.members, config=config_gauges(settings), wait=wait))

    def start(self) -> None:
        """Ask for the first per-member reading now, so the first scrapes find it."""
        self.members.get()

    def partner_wide(self, encoder) -> bytes:
        """/metrics: the partner-wide families and the sync figures, in the encoder's format."""
        return encoder(self.registry)

    def per_member(self, openmetrics: bool) -> tuple[bytes, bytes, bytes]:
        """/metrics/members: (the lines, the lines gzipped, the tail: OpenMetrics' `# EOF`). The
        lines are the same in both formats; empty when there is no reading (yet, or the
        database cannot be read)."""
        reading = self.members.get(wait=self.wait)
        tail = b"# EOF\n" if openmetrics else b""
        if reading is None:
            return b"", b"", tail
        return reading.block, reading.block_gzip, tail


def render(engine: Engine, *, per_member: bool = True, default_threshold: Decimal = Decimal("10000"),
           settings: Settings | None = None) -> bytes:  # fmt: skip
    """/metrics and /metrics/members together (Prometheus text format 0.0.4), read afresh."""

    settings = dataclasses.replace(settings or Settings(), metrics_per_member=per_member,
                                   alert_threshold=default_threshold)  # fmt: skip
    metrics = LedgerMetrics(engine, settings, wait=True)
    head = metrics.partner_wide(generate_latest)
    if b"ledger_database_up 1" not in head:
        return head
    return head + metrics.per_member(openmetrics=False)[0]
