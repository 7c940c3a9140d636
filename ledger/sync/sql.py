"""Every statement of the sync, each written once.

Commit boundaries, so a crash anywhere loses nothing:
- START, one transaction: a dead process's running runs become abandoned, ours are recorded,
  and where each kind stands is read;
- a page holding rows: its rows and ADVANCE_STATES commit together;
- FINISH, one transaction: every run's outcome, and ADVANCE_STATES for what is left (the
  advance of pages with no rows waits for the next page with rows or for this).
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Integer, String

_KINDS = bindparam("kinds", type_=ARRAY(String))

MEMBER = text("SELECT id, user_id FROM members WHERE corp_num = :corp")  # text: nothing to build per member

# The run rows must outlive a server crash (pages need not: they are redone), whatever the
# server's or role's default. Set for the session, once per connection (a session SET also
# outranks a later reload of the server's configuration), so the start and the close of
# every sync need no statement of their own for it.
_SYNC_COMMIT = text("SET synchronous_commit = on")
_DURABLE = "ledger.sync.synchronous_commit_on"  # in Connection.info: the SET above was committed


def durable_commits(conn: Connection) -> None:
    """Before the start or close transaction's first statement: see _SYNC_COMMIT."""
    if not conn.info.get(_DURABLE):
        conn.execute(_SYNC_COMMIT)


def commit_durable(conn: Connection) -> None:
    conn.commit()
    conn.info[_DURABLE] = True  # only once committed: a rolled-back SET is undone


# One statement for the whole start of a sync: a dead process's running rows become
# abandoned and ours are recorded; where each kind stands (new states from RETURNING,
# existing ones from the statement's snapshot, which does not see its own inserts; the
# leases rule out a racing insert); and the oldest payment and refund still pending, whose
# codes come from state_codes unless given (a subquery runs only for a kind being synced).
START = text(
    """
    WITH abandoned AS (
        UPDATE sync_runs SET status = 'abandoned', finished_at = now(), error = 'the process running it stopped'
        WHERE member_id = :m AND kind = ANY(:kinds) AND status = 'running'
    ), runs AS (
        INSERT INTO sync_runs (member_id, kind) SELECT :m, unnest(:kinds) RETURNING id, kind
    ), created AS (
        INSERT INTO sync_states (member_id, kind) SELECT :m, unnest(:kinds)
        ON CONFLICT (member_id, kind) DO NOTHING RETURNING kind, high_water, last_full_pass_at
    ), states AS (
        SELECT * FROM created
        UNION ALL SELECT kind, high_water, last_full_pass_at FROM sync_states WHERE member_id = :m AND kind = ANY(:kinds)
    )
    SELECT runs.kind, runs.id, states.high_water, states.last_full_pass_at,
        EXISTS (SELECT 1 FROM sync_repairs r WHERE r.member_id = :m AND r.kind = runs.kind AND r.fetched_at IS NULL
                AND r.fetch_attempts < :repair_attempts) AS repairs_due,
        CASE runs.kind
            WHEN 'payments' THEN (SELECT min(reg_dt) FROM payments WHERE member_id = :m AND settle_state = ANY(
                coalesce(:settle, ARRAY(SELECT code FROM state_codes WHERE kind = 'settle' AND meaning = 'pending'))))
            WHEN 'refunds' THEN (SELECT min(req_dt) FROM refunds WHERE member_id = :m AND state = ANY(
                coalesce(:refund, ARRAY(SELECT code FROM state_codes WHERE kind = 'refund' AND meaning = 'pending'))))
        END AS oldest_pending
    FROM runs JOIN states USING (kind)
    """
).bindparams(_KINDS, bindparam("settle", type_=ARRAY(Integer)), bindparam("refund", type_=ARRAY(Integer)))

SKIPPED = text(
    "INSERT INTO sync_runs (member_id, kind, status, finished_at, error) "
    "SELECT :m, k, 'skipped', now(), e FROM unnest(:kinds, :errors) AS t(k, e) RETURNING id, kind"
).bindparams(_KINDS, bindparam("errors", type_=ARRAY(String)))

# The one state advance, for any number of kinds of one member: pages done, the window walked,
# the high-water mark (never moved back), a full pass, a success. :commit_mode 'off' makes a
# page's commit asynchronous (LOCAL: this transaction only; a setting that takes effect at the
# commit, so it may come last, in the FROM list, where it costs no statement of its own): rows
# and state are lost or kept together on a server crash, and the next run redoes what was lost.
_ADVANCE_STATES = """
    UPDATE sync_states s SET
        pages_done = s.pages_done + t.pages, updated_at = now(),
        window_start = coalesce(t.window_start, s.window_start),
        window_end = coalesce(t.window_end, s.window_end),
        high_water = CASE WHEN t.high_water IS NULL THEN s.high_water
                          ELSE greatest(coalesce(s.high_water, t.high_water), t.high_water) END,
        last_full_pass_at = CASE WHEN t.full_pass THEN now() ELSE s.last_full_pass_at END,
        last_success_at = CASE WHEN t.succeeded THEN now() ELSE s.last_success_at END
    FROM unnest(CAST(:kinds AS text[]), CAST(:pages AS int[]), CAST(:window_starts AS date[]),
                CAST(:window_ends AS date[]), CAST(:high_waters AS date[]), CAST(:full_passes AS boolean[]),
                CAST(:succeeded AS boolean[]))
            AS t(kind, pages, window_start, window_end, high_water, full_pass, succeeded),
         (SELECT set_config('synchronous_commit', :commit_mode, true)) AS commit_mode
    WHERE s.member_id = :m AND s.kind = t.kind
"""
ADVANCE_STATES = text(_ADVANCE_STATES)

# The close of a sync, one statement: every run's outcome, then the state advance of every kind.
FINISH = text(
    """
    WITH runs AS (
        UPDATE sync_runs r SET status = t.status, error = t.error, finished_at = now(), pages = t.pages,
            api_calls = t.api_calls, rows_inserted = t.inserted, rows_updated = t.updated, rows_unchanged = t.unchanged
        FROM unnest(CAST(:ids AS int[]), CAST(:statuses AS text[]), CAST(:errors AS text[]), CAST(:run_pages AS int[]),
                    CAST(:api_calls AS int[]), CAST(:inserted AS int[]), CAST(:updated AS int[]),
                    CAST(:unchanged AS int[]))
            AS t(id, status, error, pages, api_calls, inserted, updated, unchanged)
        WHERE r.id = t.id
    )"""
    + _ADVANCE_STATES
)
RUN_COLUMNS = ("ids", "statuses", "errors", "run_pages", "api_calls", "inserted", "updated", "unchanged")
