"""Gauges read from PostgreSQL at scrape time, so every process, and a restarted one, gives the
same answer. Each query reads an index or a small table; bench/metrics_bench.py times a scrape
at 10,000 members and prints the plans."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text

from ledger.alerts.models import ALERT_STATES, CHANNELS, NOTIFICATION_STATUSES
from ledger.alerts.service import RULES
from ledger.db.registry import metadata
from ledger.pending.models import KINDS as TRACKED_KINDS
from ledger.pending.models import STATES as TRACKED_STATES
from ledger.reconcile.models import CHECKS

# Below this many rows (by the planner's estimate) a table's rows are counted exactly; above it
# the estimate (pg_class.reltuples, kept by autovacuum) stands, as counting would be slow.
EXACT_COUNT_BELOW = 200_000

QUERIES = {
    "partner_balance": """
        SELECT balance FROM balance_snapshots WHERE member_id IS NULL ORDER BY member_id, taken_at DESC LIMIT 1
    """,
    "members": "SELECT active, count(*) FROM members GROUP BY active",
    "sync_summary": """
        SELECT k.kind, max(extract(epoch FROM now() - s.last_success_at)) AS oldest,
               count(*) FILTER (WHERE s.last_success_at IS NULL) AS never
        FROM members m
        CROSS JOIN (VALUES ('payments'), ('usage'), ('refunds')) AS k(kind)
        LEFT JOIN sync_states s ON s.member_id = m.id AND s.kind = k.kind
        WHERE m.active
        GROUP BY k.kind
    """,
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
    """The partner-wide gauges, read at every scrape. A database that cannot be read gives
    ledger_database_up 0 and nothing else, never stale numbers. The per-member series are
    rendered by PostgreSQL itself (per_member_exposition): tens of thousands of samples through
    prometheus-client's exposition cost far more than the queries."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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
        with self.engine.connect() as conn:
            conn.execute(text("SET LOCAL statement_timeout = '10s'"))

            def rows(name: str, **params):
                return conn.execute(text(QUERIES[name]), params).all()

            partner = GaugeMetricFamily("ledger_partner_balance_points", "Latest reading of the partner's own balance, in points.")  # fmt: skip
            for (value,) in rows("partner_balance"):
                partner.add_metric([], float(value))
            out.append(partner)

            members = GaugeMetricFamily("ledger_members", "Members by whether they are active.", labels=["active"])
            counts = {bool(a): n for a, n in rows("members")}
            for active in (True, False):
                members.add_metric([str(active).lower()], counts.get(active, 0))
            out.append(members)

            oldest = GaugeMetricFamily("ledger_sync_oldest_age_seconds",
                                       "Seconds since the last successful sync of the stalest active member, per kind.",
                                       labels=["kind"])  # fmt: skip
            never = GaugeMetricFamily("ledger_sync_never_succeeded_members",
                                      "Active members whose history of this kind has never synced successfully.",
                                      labels=["kind"])  # fmt: skip
            for kind, seconds, missing in rows("sync_summary"):
                if seconds is not None:
                    oldest.add_metric([kind], float(seconds))
                never.add_metric([kind], missing)
            out += [oldest, never]

            held = GaugeMetricFamily("ledger_table_rows",
                                     f"Rows held per table (exact below {EXACT_COUNT_BELOW:,} rows, else the planner's estimate).",
                                     labels=["table"])  # fmt: skip
            tables = ledger_tables()
            estimates = dict(rows("table_estimates", tables=tables))
            for table in tables:
                estimate = estimates.get(table, -1)
                if estimate < EXACT_COUNT_BELOW:
                    estimate = conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()  # noqa: S608 - our own names
                held.add_metric([table], float(estimate))
            out.append(held)

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
            sent = dict(rows("notifications_sent"))
            for channel in CHANNELS:
                for state in NOTIFICATION_STATUSES:
                    value = sent.get(channel, 0) if state == "sent" else found.get((channel, state), (0, None))[0]
                    outbox.add_metric([channel, state], value)
                ages = [o for (c, _), (_, o) in found.items() if c == channel]
                if ages:
                    unsent_age.add_metric([channel], float(max(ages)))
            out += [outbox, unsent_age]

            alerts = GaugeMetricFamily("ledger_alerts", "Alerts by rule and state.", labels=["rule", "state"])

            found = {(r, s): n for r, s, n in rows("alerts")}
            for rule in sorted(set(RULES) | {r for r, _ in found}):
                for state in ALERT_STATES:
                    alerts.add_metric([rule, state], found.get((rule, state), 0))
            out.append(alerts)

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
        return out


# Per-member families, each as (name, HELP, the SQL column that renders its lines). Every line
# is `name{labels} value`; CorpNums are ten digits and kinds a fixed set, so nothing needs escaping.
PER_MEMBER_SQL = """
    SELECT
        string_agg(format('ledger_member_balance_points{corp_num="%s"} %s', m.corp_num, b.balance), E'\\n') AS balances,
        string_agg(format('ledger_member_low_balance_threshold_points{corp_num="%s"} %s', m.corp_num,
                          coalesce(m.low_balance_threshold, :default_threshold)), E'\\n') AS thresholds
    FROM members m
    CROSS JOIN LATERAL (
        SELECT balance FROM balance_snapshots s WHERE s.member_id = m.id ORDER BY s.taken_at DESC LIMIT 1
    ) b
    WHERE m.active
"""
SYNC_AGES_SQL = """
    SELECT string_agg(format('ledger_sync_age_seconds{corp_num="%s",kind="%s"} %s', m.corp_num, s.kind,
                             round(extract(epoch FROM now() - s.last_success_at), 3)), E'\\n')
    FROM sync_states s JOIN members m ON m.id = s.member_id
    WHERE m.active AND s.last_success_at IS NOT NULL
"""
PER_MEMBER_HELP = {
    "ledger_member_balance_points": "Latest balance reading of each active member, in points.",
    "ledger_member_low_balance_threshold_points": "The balance below which a member's low-balance alert fires, in points.",
    "ledger_sync_age_seconds": "Seconds since the last successful sync of a member's history of one kind.",
}


def per_member_exposition(engine: Engine, default_threshold: Decimal) -> str:
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL statement_timeout = '10s'"))
        balances, thresholds = conn.execute(text(PER_MEMBER_SQL), {"default_threshold": default_threshold}).one()
        ages = conn.execute(text(SYNC_AGES_SQL)).scalar()
    parts = []
    for name, block in (("ledger_member_balance_points", balances),
                        ("ledger_member_low_balance_threshold_points", thresholds),
                        ("ledger_sync_age_seconds", ages)):  # fmt: skip
        parts.append(f"# HELP {name} {PER_MEMBER_HELP[name]}\n# TYPE {name} gauge\n")
        if block:
            parts.append(block + "\n")
    return "".join(parts)


def render(engine: Engine, *, per_member: bool = True, default_threshold: Decimal = Decimal("10000")) -> bytes:
    """The whole exposition (Prometheus text format 0.0.4) of one scrape."""

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(engine))
    head = generate_latest(registry)
    if not per_member or b"ledger_database_up 1.0" not in head:
        return head
    try:
        return head + per_member_exposition(engine, default_threshold).encode()
    except Exception:  # noqa: BLE001 - the partner-wide figures still answer
        return head.replace(b"ledger_database_up 1.0", b"ledger_database_up 0.0")
