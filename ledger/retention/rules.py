"""The retention rules, each one SELECT of the rows it lets go. The same SELECT counts them for a
dry run and, LIMITed and locked with SKIP LOCKED, picks the rows of one batch to delete.

What no rule ever selects:
- a run still `running`; for each member and kind its last run (what `ledger status` shows)
  and its last success (reconcile reads the balance taken after it, and the catch-up and
  status read the runs);
- for each member the balance reading reconcile compares the ledger with (the first taken at or
  after the start of its last successful usage sync), and for each member and for the partner
  the latest reading (metrics, the accountants' "below threshold" query);
- a notification not yet sent (pending or failed: still to be delivered);
- the heartbeat of beat or of a task beat still starts; each job's newest schedule claim (the
  catch-up reads the last scheduled sync's slot).
Statements, month closes, discrepancies, history rows and pending items are not pruned at all.

Walked rules read one chunk of members at a time (:ids, or :corps for the partner's readings),
each member by its own index range, so a batch costs what it deletes and not the table's size.
"""

from __future__ import annotations

import dataclasses

from ledger.health.heartbeat import SCHEDULED_TASKS, task_name
from ledger.health.models import BEAT

MEMBERS, PARTNERS = "members", "partners"


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    table: str
    label: str  # the rule within its table, in reports (the partner's rules share their members' label)
    what: str  # what goes, for the operator
    cutoff: str  # the Cutoffs field bound to :before; a rule whose cutoff is None is off
    candidates: str  # SELECT <alias>.<key> ... (no LIMIT)
    alias: str
    floor: str | None = None  # the Cutoffs field bound to :after (older rows are another rule's)
    key: str = "id"
    walk: str | None = None  # MEMBERS or PARTNERS: the statement takes a chunk of them

    @property
    def delete(self) -> str:
        return (
            f"DELETE FROM {self.table} WHERE ({self.key}) IN "
            f"({self.candidates} LIMIT :limit FOR UPDATE OF {self.alias} SKIP LOCKED)"
        )

    @property
    def count(self) -> str:
        return f"SELECT count(*) FROM ({self.candidates}) AS candidates"


# The reading reconcile compares a member's ledger with (ledger.reconcile.service, _SNAPSHOTS).
_RECONCILED = """(
    SELECT b.taken_at FROM balance_snapshots b
    WHERE b.member_id = m.id AND b.taken_at >= (SELECT max(started_at) FROM sync_runs
                                                WHERE member_id = m.id AND kind = 'usage' AND status = 'succeeded')
    ORDER BY b.taken_at LIMIT 1)"""

# A later reading of the same subject on the same Korean day exists: s is not the day's last.
_LATER_SAME_DAY = """EXISTS (
    SELECT 1 FROM balance_snapshots l
    WHERE {subject_l} AND l.taken_at >= s.taken_at AND (l.taken_at, l.id) > (s.taken_at, s.id)
      AND l.taken_at < (date_trunc('day', s.taken_at AT TIME ZONE 'Asia/Seoul') + interval '1 day')
                       AT TIME ZONE 'Asia/Seoul')"""

_MEMBER_L = "l.member_id = m.id"
_PARTNER_L = "l.member_id IS NULL AND l.corp_num = m.corp"

RUNS = Rule(
    name="runs",
    table="sync_runs",
    label="old",
    what="runs started before the cutoff, except each member and kind's last run and last success",
    cutoff="runs_before",
    alias="r",
    walk=MEMBERS,
    candidates="""
        SELECT r.id
        FROM unnest(CAST(:ids AS integer[])) AS m(id)
        CROSS JOIN (VALUES ('payments'), ('usage'), ('refunds')) AS k(kind)
        CROSS JOIN LATERAL (SELECT
            (SELECT id FROM sync_runs WHERE member_id = m.id AND kind = k.kind AND status = 'succeeded'
             ORDER BY started_at DESC, id DESC LIMIT 1) AS last_success,
            (SELECT id FROM sync_runs WHERE member_id = m.id AND kind = k.kind AND status <> 'skipped'
             ORDER BY started_at DESC, id DESC LIMIT 1) AS last_run) AS kept
        JOIN sync_runs r ON r.member_id = m.id AND r.kind = k.kind AND r.started_at < :before
        WHERE r.status <> 'running' AND r.id IS DISTINCT FROM kept.last_success AND r.id IS DISTINCT FROM kept.last_run
    """,
)

THIN_MEMBERS = Rule(
    name="snapshots_thinned",
    table="balance_snapshots",
    label="thinned",
    what="members' readings before the cutoff that are not the last of their Korean day",
    cutoff="thin_before",
    floor="snapshots_before",
    alias="s",
    walk=MEMBERS,
    candidates=f"""
        SELECT s.id
        FROM unnest(CAST(:ids AS integer[])) AS m(id)
        CROSS JOIN LATERAL (SELECT {_RECONCILED} AS taken_at) AS kept
        JOIN balance_snapshots s ON s.member_id = m.id AND s.taken_at >= :after AND s.taken_at < :before
        WHERE s.taken_at IS DISTINCT FROM kept.taken_at AND {_LATER_SAME_DAY.format(subject_l=_MEMBER_L)}
    """,
)

THIN_PARTNER = Rule(
    name="partner_snapshots_thinned",
    table="balance_snapshots",
    label="thinned",
    what="the partner's readings before the cutoff that are not the last of their Korean day",
    cutoff="thin_before",
    floor="snapshots_before",
    alias="s",
    walk=PARTNERS,
    candidates=f"""
        SELECT s.id
        FROM unnest(CAST(:corps AS text[])) AS m(corp)
        JOIN balance_snapshots s ON s.member_id IS NULL AND s.corp_num = m.corp
                                 AND s.taken_at >= :after AND s.taken_at < :before
        WHERE {_LATER_SAME_DAY.format(subject_l=_PARTNER_L)}
    """,
)

DROP_MEMBERS = Rule(
    name="snapshots_dropped",
    table="balance_snapshots",
    label="dropped",
    what="members' readings before the cutoff, except each member's latest and the one reconcile reads",
    cutoff="snapshots_before",
    alias="s",
    walk=MEMBERS,
    candidates=f"""
        SELECT s.id
        FROM unnest(CAST(:ids AS integer[])) AS m(id)
        CROSS JOIN LATERAL (SELECT {_RECONCILED} AS taken_at,
            (SELECT b.id FROM balance_snapshots b WHERE b.member_id = m.id
             ORDER BY b.taken_at DESC, b.id DESC LIMIT 1) AS latest) AS kept
        JOIN balance_snapshots s ON s.member_id = m.id AND s.taken_at < :before
        WHERE s.id <> kept.latest AND s.taken_at IS DISTINCT FROM kept.taken_at
    """,
)

DROP_PARTNER = Rule(
    name="partner_snapshots_dropped",
    table="balance_snapshots",
    label="dropped",
    what="the partner's readings before the cutoff, except its latest",
    cutoff="snapshots_before",
    alias="s",
    walk=PARTNERS,
    candidates="""
        SELECT s.id
        FROM unnest(CAST(:corps AS text[])) AS m(corp)
        CROSS JOIN LATERAL (SELECT
            (SELECT b.id FROM balance_snapshots b WHERE b.member_id IS NULL AND b.corp_num = m.corp
             ORDER BY b.taken_at DESC, b.id DESC LIMIT 1) AS latest) AS kept
        JOIN balance_snapshots s ON s.member_id IS NULL AND s.corp_num = m.corp AND s.taken_at < :before
        WHERE s.id <> kept.latest
    """,
)

# A sent row was due when it was sent (next_attempt_at <= sent_at): the first condition lets
# the (status, next_attempt_at) index find the old ones.
OUTBOX = Rule(
    name="outbox",
    table="notifications",
    label="sent",
    what="notifications sent before the cutoff (pending and failed ones are never pruned)",
    cutoff="sent_before",
    alias="n",
    candidates="""
        SELECT n.id FROM notifications n
        WHERE n.status = 'sent' AND n.next_attempt_at < :before AND n.sent_at < :before
    """,
)

KEPT_HEARTBEATS = (BEAT, *(task_name(t) for t in SCHEDULED_TASKS))

HEARTBEATS = Rule(
    name="heartbeats",
    table="heartbeats",
    label="stale",
    what="heartbeats of tasks beat no longer starts, silent since the cutoff",
    cutoff="heartbeats_before",
    alias="h",
    key="name",
    candidates="""
        SELECT h.name FROM heartbeats h
        WHERE h.name <> ALL(CAST(:kept AS text[])) AND greatest(h.started_at, h.finished_at) < :before
    """,
)

CLAIMS = Rule(
    name="schedule_claims",
    table="schedule_claims",
    label="old",
    what="claims of slots before the cutoff, except each job's newest",
    cutoff="claims_before",
    alias="c",
    key="job, slot",
    candidates="""
        SELECT c.job, c.slot FROM schedule_claims c
        WHERE c.slot < :before AND c.slot < (SELECT max(l.slot) FROM schedule_claims l WHERE l.job = c.job)
    """,
)

RULES = (RUNS, THIN_MEMBERS, THIN_PARTNER, DROP_MEMBERS, DROP_PARTNER, OUTBOX, HEARTBEATS, CLAIMS)
TABLES = tuple(dict.fromkeys(rule.table for rule in RULES))
