"""`ledger db prune` and the beat task: the same prune, a dry run that deletes nothing, bad
settings refused by name before anything is deleted, one run per scheduled slot."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from celery.schedules import crontab
from sqlalchemy import text

from ledger import context
from ledger.kst import KST, today_kst
from ledger.secret import Secret
from ledger.settings import Settings
from tests.cli.helpers import run
from tests.conftest import TEST_DATABASE_URL

TABLES = ("sync_runs", "balance_snapshots", "notifications", "heartbeats", "schedule_claims")


def kst(days_ago: int, hour: int) -> dt.datetime:
    return dt.datetime.combine(today_kst() - dt.timedelta(days=days_ago), dt.time(hour), tzinfo=KST)


@pytest.fixture
def old_rows(committed):
    """One member's runs (two a kind old enough to go, one recent), readings and notifications."""
    with committed.begin() as conn:
        conn.execute(text("INSERT INTO members (corp_num) VALUES ('1234567890')"))
        conn.execute(text("""
            INSERT INTO sync_runs (member_id, kind, status, started_at, finished_at)
            SELECT m.id, k, 'succeeded', t, t FROM members m CROSS JOIN unnest(ARRAY['payments', 'usage', 'refunds']) k
            CROSS JOIN unnest(ARRAY[:old, :old + interval '1 hour', now()]) t
        """), {"old": kst(100, 2)})  # fmt: skip
        conn.execute(text("""
            INSERT INTO balance_snapshots (subject, member_id, corp_num, balance, taken_at)
            SELECT 'member', m.id, m.corp_num, 1000 + g, :old + g * interval '30 minutes'
            FROM members m CROSS JOIN generate_series(0, 3) g
        """), {"old": kst(40, 9)})  # fmt: skip
        conn.execute(text("""
            INSERT INTO notifications (channel, kind, text, payload, status, created_at, next_attempt_at, sent_at)
            VALUES ('log', 'test', 'old', '{}', 'sent', :old, :old, :old), ('log', 'test', 'old', '{}', 'failed', :old, :old, NULL)
        """), {"old": kst(40, 9)})  # fmt: skip
    return committed


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES}


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LEDGER_RETENTION_SNAPSHOTS_DAYS", "10"), ("LEDGER_RETENTION_RUNS_DAYS", "3")],
)  # fmt: skip (the whole matrix of values: test_policy.py)
def test_a_bad_setting_is_named_and_nothing_is_deleted(old_rows, variable, value):
    before = counts(old_rows)
    result = run("db", "prune", env={variable: value})
    assert result.exit_code == 2, result.output
    assert variable in result.output
    assert counts(old_rows) == before


def test_dry_run_counts_what_the_prune_then_deletes(old_rows):
    before = counts(old_rows)
    dry = run("db", "prune", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would go: sync_runs 6, balance_snapshots 3, notifications 1, heartbeats 0, schedule_claims 0" in dry.output
    assert counts(old_rows) == before

    done = run("db", "prune", "--json")
    assert done.exit_code == 0, done.output
    deleted = {}
    for line in json.loads(done.output):
        deleted[line["table"]] = deleted.get(line["table"], 0) + line["deleted"]
    assert deleted == {"sync_runs": 6, "balance_snapshots": 3, "notifications": 1, "heartbeats": 0,
                       "schedule_claims": 0}  # fmt: skip
    assert counts(old_rows) == {t: before[t] - deleted[t] for t in TABLES}


def test_the_beat_task_prunes_once_per_slot(old_rows):
    from ledger.retention.tasks import prune_task

    context.use(dataclasses.replace(Settings(), database_url=Secret(TEST_DATABASE_URL)))
    try:
        first, second = prune_task(), prune_task()
    finally:
        context.reset()
    assert first == {"sync_runs": 6, "balance_snapshots": 3, "notifications": 1, "heartbeats": 0,
                     "schedule_claims": 0}  # fmt: skip
    assert second == {}, "the slot was claimed by the first run"
    with old_rows.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM schedule_claims WHERE job = 'retention'")).scalar() == 1


def test_beat_schedules_the_prune_unless_it_is_off():
    from ledger.worker.app import beat_schedule

    entry = beat_schedule(Settings())["prune"]
    assert entry["task"] == "ledger.retention.prune"
    assert entry["schedule"] == crontab(minute="0", hour="5")
    assert "prune" not in beat_schedule(dataclasses.replace(Settings(), schedule_retention="off"))
