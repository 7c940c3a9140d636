"""A large `ledger sync` keeps no result per member and kind: counts and sums per kind and
status, and only the syncs worth reading (failed, skipped, with rows quarantined); `--json`
streams one valid array. The tally adds up to what every result said."""

from __future__ import annotations

import json

from ledger.members.service import MemberInput
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.display import stopped_summary, totals_line
from ledger.sync.job import SyncResult
from ledger.sync.runner import run_sync
from ledger.sync.tally import NOTABLE_LIMIT, SyncTally
from tests.cli.helpers import add_members, run
from tests.conftest import client_settings, small_config

CORPS = ["1234567890", "2208112345", "1018212345"]


def test_a_large_sync_keeps_only_what_did_not_succeed(clean_engine):
    add_members(clean_engine, *map(MemberInput, CORPS))
    told: list = []
    with Simulator(small_config(history_days=10)) as sim, PopbillClient(client_settings(sim)) as client:
        sim.world.close_member(CORPS[1])
        tally = run_sync(clean_engine, client, corp_nums=[], kinds=("payments", "usage", "refunds"),
                         show_progress=False, jobs=2, keep_all=False, on_result=told.append)  # fmt: skip
    assert len(told) == 9  # every result was told as it ended
    assert sorted((r.corp_num, r.kind) for r in tally.results) == [(CORPS[1], k) for k in ("payments", "refunds", "usage")]
    assert all(r.status == "failed" for r in tally.results)
    assert tally.count("succeeded") == 6 and tally.count("failed") == 3
    for field in ("pages", "api_calls", "inserted", "updated", "unchanged"):
        assert tally.total(field) == sum(getattr(r, field) for r in told), field
    by_kind = {row["kind"]: row for row in tally.rows_by_kind()}
    assert by_kind["usage"]["succeeded"] == 2 and by_kind["usage"]["failed"] == 1
    assert totals_line(tally, 1.0).startswith("3 members, 9 syncs, ")


def test_past_the_limit_notable_results_are_counted_not_kept():
    tally = SyncTally(members=NOTABLE_LIMIT + 10, kinds=1)
    for n in range(NOTABLE_LIMIT + 10):
        tally.add(SyncResult(f"{n:010d}", "usage", status="failed", api_calls=1))
    tally.add(SyncResult("9999999999", "usage", status="succeeded", pages=2, inserted=5))
    assert len(tally.kept) == NOTABLE_LIMIT and tally.not_kept == 10
    assert tally.count("failed") == NOTABLE_LIMIT + 10 and tally.total("api_calls") == NOTABLE_LIMIT + 10
    assert stopped_summary(tally).startswith("interrupted: kept 2 whole pages (5 rows) from 1 syncs; 1 finished, ")


def test_ledger_sync_json_streams_one_array(clean_engine):
    add_members(clean_engine, *map(MemberInput, CORPS))
    with Simulator(small_config(history_days=5)) as sim:
        result = run("sync", "--jobs", "3", "--json", env={"POPBILL_API_URL": sim.url, "LINKHUB_AUTH_URL": sim.url})
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted((r["corp_num"], r["kind"]) for r in rows) == sorted(
        (c, k) for c in CORPS for k in ("payments", "usage", "refunds")
    )
    assert all(r["status"] == "succeeded" and "quarantined" in r for r in rows)
