"""The retention settings and the cutoffs they give."""

from __future__ import annotations

import datetime as dt

import pytest

from ledger.kst import KST
from ledger.retention.policy import Policy
from ledger.settings import Settings, SettingsError


def test_defaults():
    policy = Policy.from_settings(Settings.from_env({}))
    assert policy == Policy(runs_days=90, snapshots_full_days=30, snapshots_days=400, outbox_days=30,
                            heartbeats_days=30, claims_days=14, batch_rows=5000)  # fmt: skip
    assert Settings.from_env({}).schedule_retention == "0 5 * * *"


def test_settings_are_read():
    env = {"LEDGER_RETENTION_RUNS_DAYS": "30", "LEDGER_RETENTION_SNAPSHOTS_FULL_DAYS": "7",
           "LEDGER_RETENTION_SNAPSHOTS_DAYS": "0", "LEDGER_RETENTION_OUTBOX_DAYS": "3",
           "LEDGER_RETENTION_HEARTBEATS_DAYS": "2", "LEDGER_RETENTION_CLAIMS_DAYS": "2",
           "LEDGER_RETENTION_BATCH_ROWS": "100", "LEDGER_SCHEDULE_RETENTION": "off"}  # fmt: skip
    settings = Settings.from_env(env)
    assert Policy.from_settings(settings) == Policy(30, 7, 0, 3, 2, 2, 100)
    assert settings.schedule_retention == "off"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [("LEDGER_RETENTION_RUNS_DAYS", "6", "from 7 to 36500"), ("LEDGER_RETENTION_RUNS_DAYS", "90.5", "whole number"),
     ("LEDGER_RETENTION_SNAPSHOTS_FULL_DAYS", "1", "from 2"), ("LEDGER_RETENTION_SNAPSHOTS_DAYS", "-1", "from 0"),
     ("LEDGER_RETENTION_OUTBOX_DAYS", "0", "from 1"), ("LEDGER_RETENTION_HEARTBEATS_DAYS", "", None),
     ("LEDGER_RETENTION_CLAIMS_DAYS", "1", "from 2"), ("LEDGER_RETENTION_BATCH_ROWS", "100001", "to 100000"),
     ("LEDGER_SCHEDULE_RETENTION", "nightly", "crontab")],
)  # fmt: skip
def test_bad_values_are_refused_by_name(variable, value, says):
    if says is None:  # empty: the default
        Settings.from_env({variable: value})
        return
    with pytest.raises(SettingsError, match=variable) as refused:
        Settings.from_env({variable: value})
    assert says in str(refused.value)


def test_readings_kept_a_day_at_a_time_must_outlast_the_full_ones():
    with pytest.raises(SettingsError, match="LEDGER_RETENTION_SNAPSHOTS_DAYS .20. must be 0 .forever. or at least"):
        Settings.from_env({"LEDGER_RETENTION_SNAPSHOTS_DAYS": "20"})  # thinned after 30 days by default


def test_day_cutoffs_fall_on_a_korean_midnight():
    # 23:30 UTC on Dec 1 is 08:30 KST on Dec 2: days are counted from the Korean date.
    cutoffs = Policy().cutoffs(dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC))
    assert cutoffs.runs_before == dt.datetime(2026, 9, 3, tzinfo=KST)
    assert cutoffs.thin_before == dt.datetime(2026, 11, 2, tzinfo=KST)
    assert cutoffs.snapshots_before == dt.datetime(2025, 10, 28, tzinfo=KST)
    assert cutoffs.sent_before == dt.datetime(2026, 11, 1, 23, 30, tzinfo=dt.UTC)
    assert Policy(snapshots_days=0).cutoffs(dt.datetime(2026, 12, 1, tzinfo=dt.UTC)).snapshots_before is None
