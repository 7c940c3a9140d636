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
A batch finds its rows, locks them and deletes them by ctid.
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
    candidates: str  # SELECT ... AS row: the ctids of the rows that go (no LIMIT)
    floor: str | None = None  # the Cutoffs field bound to :after (older rows are another rule's)
    # A resumable rule starts where its last complete run stopped (retention_marks) rather than
    # at its floor: thinning would otherwise read a year of one-a-day readings again every night.
    # (A reading kept then only because reconcile read it stays until the readings' last cutoff.)
    resumable: bool = False
    walk: str | None = None  # MEMBERS or PARTNERS: the statement takes a chunk of them

    @property
    def delete(self) -> str:
        """One batch: up to :limit candidates, locked unless another transaction holds them,
        deleted, every step by ctid (no plan can make it a scan of the table). Returns how many
        were picked (fewer than :limit: none are left) and how many went."""
        return f"""
            WITH picked AS (SELECT c.row FROM ({self.candidates}) AS c LIMIT :limit),
            locked AS (
                SELECT t.ctid FROM {self.table} t WHERE t.ctid = ANY(ARRAY(SELECT row FROM picked))
                FOR UPDATE SKIP LOCKED),
            gone AS (DELETE FROM {self.table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM locked)) RETURNING 1)
            SELECT (SELECT count(*) FROM picked) AS picked, (SELECT count(*) FROM gone) AS deleted"""

    @property
    def count(self) -> str:
        return f"SELECT count(*) FROM ({self.candidates}) AS c"


# The reading reconcile compares a member's ledger with (ledger.reconcile.service, _SNAPSHOTS).
_RECONCILED = """(
    SELECT b.taken_at FROM balance_snapshots b
    WHERE b.member_id = m.id AND b.taken_at >= (SELECT max(started_at) FROM sync_runs
                                                WHERE member_id = m.id AND kind = 'usage' AND status = 'succeeded')
    ORDER BY b.taken_at LIMIT 1)"""

# The end of the Korean day a reading was taken on.
_DAY_END = "(date_trunc('day', s.taken_at AT TIME ZONE 'Asia/Seoul') + interval '1 day') AT TIME ZONE 'Asia/Seoul'"

# Each subject's readings in the range with the time of its next one: a reading whose next one
# falls on the same Korean day is not the day's last. Both cutoffs are Korean midnights, so a
# day is always whole in the range. A window function keeps the subquery apart (it cannot be
# flattened into a join): one index range per subject, whatever the planner thinks of :ids.
_WITH_NEXT = """CROSS JOIN LATERAL (
    SELECT b.ctid AS row, b.taken_at, lead(b.taken_at) OVER (ORDER BY b.taken_at, b.id) AS next_at
    FROM balance_snapshots b WHERE {subject} AND b.taken_at >= :after AND b.taken_at < :before) AS s"""

RUNS = Rule(
    name="runs",
    table="sync_runs",
    label="old",
    what="runs started before the cutoff, except each member and kind's last run and last success",
    cutoff="runs_before",
    walk=MEMBERS,
    # OFFSET 0 keeps the lateral subquery a subquery: one index range per member and kind.
    candidates="""
        SELECT r.row
        FROM unnest(CAST(:ids AS integer[])) AS m(id)
        CROSS JOIN (VALUES ('payments'), ('usage'), ('refunds')) AS k(kind)
        CROSS JOIN LATERAL (SELECT
            (SELECT id FROM sync_runs WHERE member_id = m.id AND kind = k.kind AND status = 'succeeded'
             ORDER BY started_at DESC, id DESC LIMIT 1) AS last_success,
            (SELECT id FROM sync_runs WHERE member_id = m.id AND kind = k.kind AND status <> 'skipped'
             ORDER BY started_at DESC, id DESC LIMIT 1) AS last_run) AS kept
        CROSS JOIN LATERAL (
            SELECT r.ctid AS row FROM sync_runs r
            WHERE r.member_id = m.id AND r.kind = k.kind AND r.started_at < :before AND r.status <> 'running'
              AND r.id IS DISTINCT FROM kept.last_success AND r.id IS DISTINCT FROM kept.last_run
            OFFSET 0) AS r
    """,
)

THIN_MEMBERS = Rule(
    name="snapshots_thinned",
    table="balance_snapshots",
    label="thinned",
    what="members' readings before the cutoff that are not the last of their Korean day",
    cutoff="thin_before",
    floor="snapshots_before",
    resumable=True,
    walk=MEMBERS,
    candidates=f"""
        SELECT s.row
        FROM unnest(CAST(:ids AS integer[])) AS m(id)
        CROSS JOIN LATERAL (SELECT {_RECONCILED} AS taken_at) AS kept
        {_WITH_NEXT.format(subject="b.member_id = m.id")}
        WHERE s.next_at < {_DAY_END} AND s.taken_at IS DISTINCT FROM kept.taken_at
    """,
)

THIN_PARTNER = Rule(
    name="partner_snapshots_thinned",
    table="balance_snapshots",
    label="thinned",
    what="the partner's readings before the cutoff that are not the last of their Korean day",
    cutoff="thin_before",
    floor="snapshots_before",
    resumable=True,
    walk=PARTNERS,
    candidates=f"""
        SELECT s.row
        FROM unnest(CAST(:corps AS text[])) AS m(corp)
        {_WITH_NEXT.format(subject="b.member_id IS NULL AND b.corp_num = m.corp")}
        WHERE s.next_at < {_DAY_END}
    """,
)

DROP_MEMBERS = Rule(
    name="snapshots_dropped",
    table="balance_snapshots",
    label="dropped",
    what="members' readings before the cutoff, except each member's latest and the one reconcile reads",
    cutoff="snapshots_before",
    walk=MEMBERS,
    candidates=f"""
        SELECT s.row
        FROM unnest(CAST(:ids AS integer[])) AS m(id)
        CROSS JOIN LATERAL (SELECT {_RECONCILED} AS taken_at,
            (SELECT b.id FROM balance_snapshots b WHERE b.member_id = m.id
             ORDER BY b.taken_at DESC, b.id DESC LIMIT 1) AS latest) AS kept
        CROSS JOIN LATERAL (
            SELECT b.ctid AS row FROM balance_snapshots b
            WHERE b.member_id = m.id AND b.taken_at < :before
              AND b.id <> kept.latest AND b.taken_at IS DISTINCT FROM kept.taken_at
            OFFSET 0) AS s
    """,
)

DROP_PARTNER = Rule(
    name="partner_snapshots_dropped",
    table="balance_snapshots",
    label="dropped",
    what="the partner's readings before the cutoff, except its latest",
    cutoff="snapshots_before",
    walk=PARTNERS,
    candidates="""
        SELECT s.row
        FROM unnest(CAST(:corps AS text[])) AS m(corp)
        CROSS JOIN LATERAL (SELECT
            (SELECT b.id FROM balance_snapshots b WHERE b.member_id IS NULL AND b.corp_num = m.corp
             ORDER BY b.taken_at DESC, b.id DESC LIMIT 1) AS latest) AS kept
        CROSS JOIN LATERAL (
            SELECT b.ctid AS row FROM balance_snapshots b
            WHERE b.member_id IS NULL AND b.corp_num = m.corp AND b.taken_at < :before AND b.id <> kept.latest
            OFFSET 0) AS s
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
    candidates="""
        SELECT n.ctid AS row FROM notifications n
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
    candidates="""
        SELECT h.ctid AS row FROM heartbeats h
        WHERE h.name <> ALL(CAST(:kept AS text[])) AND greatest(h.started_at, h.finished_at) < :before
    """,
)

CLAIMS = Rule(
    name="schedule_claims",
    table="schedule_claims",
    label="old",
    what="claims of slots before the cutoff, except each job's newest",
    cutoff="claims_before",
    candidates="""
        SELECT c.ctid AS row FROM schedule_claims c
        WHERE c.slot < :before AND c.slot < (SELECT max(l.slot) FROM schedule_claims l WHERE l.job = c.job)
    """,
)

RULES = (RUNS, THIN_MEMBERS, THIN_PARTNER, DROP_MEMBERS, DROP_PARTNER, OUTBOX, HEARTBEATS, CLAIMS)
TABLES = tuple(dict.fromkeys(rule.table for rule in RULES))
