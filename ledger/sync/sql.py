"""Every statement of the sync, each written once.

Commit boundaries, so a crash anywhere loses nothing:
- START, one transaction: the member is found, the leases taken, a dead process's running runs
  become abandoned, ours are recorded, and where each kind stands is read;
- a page holding rows: its rows and ADVANCE_STATES commit together;
- FINISH, one transaction: the rows of a kind's last page when it is small (ledger/history/
  small_pages.py), every run's outcome, the leases released, and ADVANCE_STATES for what is
  left (the advance of pages with no rows waits for the next page with rows or for this).
START and FINISH run on the driver's connection (psycopg, %(name)s parameters), where
SQLAlchemy's execution layer cost more CPU than the driver and the server, each for the
members of a process that start or close at about the same time (ledger/sync/batches.py).
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import String

_KINDS = bindparam("kinds", type_=ARRAY(String))

# The run rows must outlive a server crash (pages need not: they are redone), whatever the
# server's or role's default. Set for the session, once per connection (a session SET also
# outranks a later reload of the server's configuration), so the start and the close of
# every sync need no statement of their own for it.
_SYNC_COMMIT = text("SET synchronous_commit = on")
DURABLE_FLAG = "ledger.sync.synchronous_commit_on"  # in Connection.info: the SET above was committed


def durable_commits(conn: Connection) -> None:
    """Before the start or close transaction's first statement: see _SYNC_COMMIT."""
    if not conn.info.get(DURABLE_FLAG):
        conn.execute(_SYNC_COMMIT)


def driver_durable_commits(driver) -> None:
    """durable_commits on a driver-level connection (ledger.db.driver)."""
    if not driver.info.get(DURABLE_FLAG):
        driver.execute("SET synchronous_commit = on")


def driver_commit_durable(driver) -> None:
    driver.commit()
    driver.info[DURABLE_FLAG] = True


def commit_durable(conn: Connection) -> None:
    conn.commit()
    conn.info[DURABLE_FLAG] = True  # only once committed: a rolled-back SET is undone


# One statement for the whole start of the syncs of several members, each found by CorpNum
# (:ns numbers the requests, one element per member and kind asked for): the members; the
# leases of their kinds, taken for the process's lock session (ledger/sync/locks.py) where
# free (no holder, or one whose session is gone; a lease naming that session itself is
# another sync of this process) and that session is alive; a free lease row another
# transaction has locked is skipped (SKIP LOCKED), never waited on, and named afterwards (a
# held one is never locked here, so a start never looks like a holder); then, for the
# kinds taken, a dead process's running rows become abandoned and ours are recorded; where
# each kind stands (new states from RETURNING, existing ones from the statement's snapshot,
# which does not see its own inserts; the leases rule out a racing insert); and the oldest
# payment and refund still pending, whose codes come from state_codes unless given (a
# subquery runs only for a kind being synced). One row per member and kind asked for; none
# for a CorpNum that is not a member. A (member, kind) at most once in a statement.
# Driver-level SQL (psycopg's %(name)s).
START = """
    WITH wanted AS (
        SELECT w.n, m.id AS member_id, m.user_id, w.kind
        FROM unnest(CAST(%(ns)s AS int[]), CAST(%(corps)s AS text[]), CAST(%(kinds)s AS text[])) AS w(n, corp, kind)
        JOIN members m ON m.corp_num = w.corp
    ), holder AS (
        SELECT EXISTS (SELECT 1 FROM pg_stat_get_activity(%(pid)s) a WHERE a.backend_start = %(started)s) AS alive
    ), existing AS (
        SELECT l.member_id, l.kind FROM sync_locks l JOIN wanted w USING (member_id, kind)
    ), lockable AS (
        SELECT l.member_id, l.kind FROM sync_locks l JOIN wanted w USING (member_id, kind)
        WHERE l.holder_pid IS NULL OR NOT EXISTS (SELECT 1 FROM pg_stat_get_activity(l.holder_pid) a
                                                  WHERE a.backend_start IS NULL OR a.backend_start = l.holder_started)
        FOR UPDATE OF l SKIP LOCKED
    ), taken AS (
        INSERT INTO sync_locks AS s (member_id, kind, holder_pid, holder_started)
        SELECT w.member_id, w.kind, %(pid)s, %(started)s FROM wanted w, holder h
        WHERE h.alive AND ((w.member_id, w.kind) IN (SELECT member_id, kind FROM lockable)
                           OR (w.member_id, w.kind) NOT IN (SELECT member_id, kind FROM existing))
        ON CONFLICT (member_id, kind) DO UPDATE SET holder_pid = EXCLUDED.holder_pid,
            holder_started = EXCLUDED.holder_started
        WHERE s.holder_pid IS NULL
            OR NOT EXISTS (SELECT 1 FROM pg_stat_get_activity(s.holder_pid) a
                           WHERE a.backend_start IS NULL OR a.backend_start = s.holder_started)
        RETURNING s.member_id, s.kind
    ), abandoned AS (
        UPDATE sync_runs r SET status = 'abandoned', finished_at = now(), error = 'the process running it stopped'
        FROM taken t WHERE r.member_id = t.member_id AND r.kind = t.kind AND r.status = 'running'
    ), runs AS (
        INSERT INTO sync_runs (member_id, kind) SELECT member_id, kind FROM taken RETURNING id, member_id, kind
    ), created AS (
        INSERT INTO sync_states (member_id, kind) SELECT member_id, kind FROM taken
        ON CONFLICT (member_id, kind) DO NOTHING RETURNING member_id, kind, high_water, last_full_pass_at
    ), states AS (
        SELECT * FROM created
        UNION ALL SELECT s.member_id, s.kind, s.high_water, s.last_full_pass_at
        FROM sync_states s JOIN taken t USING (member_id, kind)
    )
    SELECT w.n, w.member_id, w.user_id, w.kind, h.alive, runs.id AS run_id, states.high_water,
        states.last_full_pass_at,
        runs.id IS NOT NULL AND EXISTS (SELECT 1 FROM sync_repairs r WHERE r.member_id = w.member_id
            AND r.kind = w.kind AND r.fetched_at IS NULL AND r.fetch_attempts < %(repair_attempts)s) AS repairs_due,
        CASE WHEN runs.id IS NULL THEN NULL
            WHEN w.kind = 'payments' THEN (SELECT min(reg_dt) FROM payments p
                WHERE p.member_id = w.member_id AND p.settle_state = ANY(coalesce(%(settle)s,
                    ARRAY(SELECT code FROM state_codes WHERE kind = 'settle' AND meaning = 'pending'))))
            WHEN w.kind = 'refunds' THEN (SELECT min(req_dt) FROM refunds f
                WHERE f.member_id = w.member_id AND f.state = ANY(coalesce(%(refund)s,
                    ARRAY(SELECT code FROM state_codes WHERE kind = 'refund' AND meaning = 'pending'))))
        END AS oldest_pending
    FROM wanted w CROSS JOIN holder h
    LEFT JOIN runs USING (member_id, kind) LEFT JOIN states USING (member_id, kind)
"""

# Before START, in its transaction: START's generic plan. PostgreSQL otherwise plans the
# statement anew at each execution (its estimate of the generic plan is no better than a
# custom one), and planning cost more than running it: 0.9 ms of the server's 2 ms a member.
GENERIC_PLAN = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"

SKIPPED = text(
    "INSERT INTO sync_runs (member_id, kind, status, finished_at, error) "
    "SELECT :m, k, 'skipped', now(), e FROM unnest(:kinds, :errors) AS t(k, e) RETURNING id, kind"
).bindparams(_KINDS, bindparam("errors", type_=ARRAY(String)))

# The one state advance, for any number of (member, kind): pages done, the window walked,
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
    FROM unnest(CAST(:member_ids AS int[]), CAST(:kinds AS text[]), CAST(:pages AS int[]), CAST(:window_starts AS date[]),
                CAST(:window_ends AS date[]), CAST(:high_waters AS date[]), CAST(:full_passes AS boolean[]),
                CAST(:succeeded AS boolean[]))
            AS t(member_id, kind, pages, window_start, window_end, high_water, full_pass, succeeded),
         (SELECT set_config('synchronous_commit', :commit_mode, true)) AS commit_mode
    WHERE s.member_id = t.member_id AND s.kind = t.kind
"""
ADVANCE_STATES = text(_ADVANCE_STATES)

# The close of the syncs of one or more members, one statement: every run's outcome, the
# leases released (those still naming the process's lock session), then the state advance of
# every (member, kind). Driver-level SQL.
FINISH = (
    """
    WITH runs AS (
        UPDATE sync_runs r SET status = t.status, error = t.error, finished_at = now(), pages = t.pages,
            api_calls = t.api_calls, rows_inserted = t.inserted, rows_updated = t.updated, rows_unchanged = t.unchanged
        FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:errors AS text[]), CAST(:run_pages AS int[]),
                    CAST(:api_calls AS int[]), CAST(:inserted AS int[]), CAST(:updated AS int[]),
                    CAST(:unchanged AS int[]))
            AS t(id, status, error, pages, api_calls, inserted, updated, unchanged)
        WHERE r.id = t.id
    ), released AS (
        UPDATE sync_locks l SET holder_pid = NULL, holder_started = NULL
        FROM unnest(CAST(:member_ids AS int[]), CAST(:kinds AS text[])) AS t(member_id, kind)
        WHERE l.member_id = t.member_id AND l.kind = t.kind AND l.holder_pid = :pid AND l.holder_started = :started
    )"""
    + _ADVANCE_STATES
)
RUN_COLUMNS = ("ids", "statuses", "errors", "run_pages", "api_calls", "inserted", "updated", "unchanged")


def driver_sql(statement: str) -> str:
    """A statement written with SQLAlchemy's :name parameters in psycopg's %(name)s style."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement)


FINISH = driver_sql(FINISH)
