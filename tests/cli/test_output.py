"""Tables fit 80 columns (CorpNum never cut, --wide for everything), amounts right-aligned with
one number of decimals, times in KST to the second; JSON keeps ISO times with their offset.
Every command's --help ends with examples; the README documents shell completion."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import click
import pytest
from sqlalchemy.orm import Session

from ledger.cli.main import cli
from ledger.cli.output import print_table
from ledger.members.service import MemberInput, add_member
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.service import sync_all
from tests.cli.helpers import run
from tests.conftest import client_settings, small_config

ROOT = Path(__file__).resolve().parents[2]
MOMENT = dt.datetime(2026, 11, 25, 15, 30, 12, 123456, tzinfo=dt.UTC)  # 2026-11-26 00:30:12 in Seoul
ROWS = [
    {"corp_num": "1234567890", "status": "interrupted", "balance": Decimal("1234.5"), "rows": 730000,
     "at": MOMENT, "error": "TransportError: the server closed the connection without answering " * 2},
    {"corp_num": "2208112345", "status": "succeeded", "balance": Decimal("7"), "rows": 3,
     "at": MOMENT, "error": None},
]  # fmt: skip


def lines_of(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def test_a_table_fits_80_columns_and_keeps_corp_nums_whole(capsys):
    print_table("t", ROWS)
    out = capsys.readouterr().out
    assert max(len(line) for line in lines_of(out)) <= 80
    table = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and all(line[-1] in "┓┃┩│┘" for line in table)  # nothing cropped at the right
    assert "1234567890" in out and "2208112345" in out and "interrupted" in out
    assert "2026-11-26 00:30:12" in out and ".123456" not in out and "KST" in out
    amounts = [line for line in out.splitlines() if "1234567890" in line or "2208112345" in line]
    # one number of decimals, right-aligned: the two amounts end in the same column
    assert "1,234.5" in amounts[0] and "7.0" in amounts[1]
    assert amounts[0].index("1,234.5") + len("1,234.5") == amounts[1].index("7.0") + len("7.0")
    assert "730,000" in amounts[0]


def test_wide_shows_every_column_on_one_line_each(capsys):
    print_table("t", ROWS, wide=True)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "1234567890" in line)
    assert ROWS[0]["error"].strip() in row  # not folded, not cut


@pytest.fixture
def synced(clean_engine):
    with Session(clean_engine) as session:
        add_member(session, MemberInput("1234567890", name="팝빌 테스트상사"))
        session.commit()
    with Simulator(small_config(history_days=10)) as sim, PopbillClient(client_settings(sim)) as client:
        sync_all(clean_engine, client, today=sim.world.today())
    return clean_engine


def test_status_narrow_wide_and_json(synced):
    narrow = run("status").stdout
    assert max(len(line) for line in lines_of(narrow)) <= 80 and "1234567890" in narrow
    assert "failures_7d" not in narrow
    wide = run("status", "--wide").stdout
    assert "failures_7d" in wide and "high_water" in wide and "팝빌 테스트상사" in wide
    times = [r["last_finished_at"] for r in json.loads(run("status", "--json").stdout)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+\d\d:\d\d", t) for t in times), times
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", narrow) and not re.search(r":\d\d\.\d", narrow)


def all_commands(group: click.Group, prefix: tuple = ()):
    context = click.Context(group)
    for name in group.list_commands(context):  # the root loads its commands lazily
        command = group.get_command(context, name)
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in all_commands(cli)], ids=" ".join)
def test_every_help_ends_with_examples_shown_once(path):
    text = run(*path, "--help").stdout
    tail = text.rstrip().split("\n\n")[-1]
    assert tail.lstrip().startswith("Examples:") and "ledger " in tail, text
    assert text.count("Example") == 1, text  # never a docstring's examples as well as the table's
    lines = [line.strip() for line in text.splitlines()]
    assert all(lines.count(example) == 1 for example in lines[-len(tail.splitlines()) + 1 :]), text


def test_readme_documents_shell_completion():
    readme = (ROOT / "README.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"_LEDGER_COMPLETE={shell}_source ledger" in readme
