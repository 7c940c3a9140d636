"""Progress counts pages and rows per member and kind, moving with every page (a large member
never sits at 0/1), with a rate and an ETA; `ledger sync` ends with a totals line."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

from ledger.members.service import MemberInput
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.display import SyncProgress, describe, fraction_done, totals_line
from ledger.sync.job import SyncResult
from ledger.sync.service import sync_all, sync_member
from ledger.sync.tally import SyncTally
from ledger.sync.windows import SyncOptions
from tests.cli.helpers import add_members as add
from tests.cli.helpers import run, subprocess_env
from tests.conftest import client_settings, small_config

CORPS = ["1234567890", "2208112345"]


def add_members(engine) -> None:
    add(engine, *map(MemberInput, CORPS))


def test_progress_moves_with_every_page_across_windows(clean_engine):
    add_members(clean_engine)
    seen: list[tuple[int, int, float, str]] = []

    def on_page(result) -> None:
        seen.append((result.pages, result.rows, fraction_done(result), describe(result, elapsed=2.0)))

    with Simulator(small_config(history_days=90, usage_per_day=20)) as sim, PopbillClient(client_settings(sim)) as client:
        options = SyncOptions(per_page=100, window_days=31, initial_days=95)
        result = sync_member(clean_engine, client, CORPS[0], "usage", today=sim.world.today(), options=options,
                             progress=on_page)  # fmt: skip
    assert result.status == "succeeded" and result.windows == 4 and result.windows_done == 4
    assert seen[0][:3] == (0, 0, 0.0)  # announced when it starts
    shares = [share for _, _, share, _ in seen]
    assert shares == sorted(shares) and shares[-1] == 1.0
    middle = [s for s in shares if 0 < s < 1]
    assert len(middle) >= result.pages // 2  # it moves page by page, not once a member
    pages, rows, _, text = seen[len(seen) // 2]
    assert text.startswith(f"{pages:,} pages, {rows:,} rows, {rows / 2:,.0f} rows/s, ETA 0:")
    assert rows < result.rows


def test_tracker_follows_each_sync_and_the_totals_line_adds_up(clean_engine):
    add_members(clean_engine)
    followed: set = set()

    def page(result) -> None:
        followed.add((result.corp_num, result.kind))
        tracker.page(result)

    tally = SyncTally(members=2)

    def ended(result) -> None:
        tracker.done(result)
        tally.add(result)

    with Simulator(small_config(history_days=20)) as sim, PopbillClient(client_settings(sim)) as client:
        with SyncProgress(total_syncs=6, show=False) as tracker:
            results = sync_all(clean_engine, client, today=sim.world.today(), jobs=2, progress=page,
                               on_result=ended)  # fmt: skip
    assert followed == {(c, k) for c in CORPS for k in ("payments", "usage", "refunds")}
    assert tracker.running() == [] and tracker.results == {}  # nothing kept once a sync ended
    assert sorted((r.corp_num, r.kind) for r in tally.results) == sorted((r.corp_num, r.kind) for r in results)
    line = totals_line(tally, 2.0)
    rows, calls = sum(r.rows for r in results), sum(r.api_calls for r in results)
    assert line == (f"2 members, 6 syncs, {rows:,} rows ({rows / 2:,.0f} rows/s), {calls:,} API calls in 2.0 s, "
                    "0 failed")  # fmt: skip


def test_ledger_sync_ends_with_a_totals_line(clean_engine):
    add_members(clean_engine)
    with Simulator(small_config(history_days=10)) as sim:
        result = run("sync", "--jobs", "2", env={"POPBILL_API_URL": sim.url, "LINKHUB_AUTH_URL": sim.url})
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"2 members, 6 syncs, [\d,]+ rows \([\d,]+ rows/s\), [\d,]+ API calls in [\d.]+ s, 0 failed",
                        last), last  # fmt: skip


def test_a_terminal_sees_pages_rows_rate_and_eta(clean_engine):
    add_members(clean_engine)
    with Simulator(small_config(history_days=90, usage_per_day=20)) as sim:
        sim.inject("latency", path="/UseHistory", rate=1.0, seconds=0.1)  # slow enough for a few redraws
        env = subprocess_env(sim, LEDGER_SYNC_PER_PAGE="100", LEDGER_SYNC_WINDOW_DAYS="31", COLUMNS="120")
        leader, follower = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "ledger", "sync", "--kind", "usage"], stdout=follower,
                                stderr=subprocess.PIPE, env=env)  # fmt: skip
        os.close(follower)
        screen = b""
        while True:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if not ready and proc.poll() is not None:
                break
            try:
                chunk = os.read(leader, 65536) if ready else b""
            except OSError:
                break
            screen += chunk
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    assert proc.returncode == 0, text[-2000:]
    assert re.search(r"1234567890 usage .* [\d,]+ pages, [\d,]+ rows, [\d,]+ rows/s, ETA \d:\d\d:\d\d", text), text[:3000]
    assert "of 2 done" in text and "2 members, 2 syncs" in text


def tallied(results: list[SyncResult], members: int) -> SyncTally:
    tally = SyncTally(members=members, kinds=1)
    for result in results:
        tally.add(result)
    return tally


def test_the_totals_line_counts_one_in_the_singular():
    one = SyncResult("1234567890", "usage", status="succeeded", api_calls=1, inserted=1)
    assert totals_line(tallied([one], 1), 1.0) == "1 member, 1 sync, 1 row (1 rows/s), 1 API call in 1.0 s, 0 failed"
    many = [SyncResult(c, "usage", status="succeeded", api_calls=1200, inserted=1000) for c in CORPS]
    assert totals_line(tallied(many, len(CORPS)), 2.0).startswith(
        "2 members, 2 syncs, 2,000 rows (1,000 rows/s), 2,400 API calls in"
    )
