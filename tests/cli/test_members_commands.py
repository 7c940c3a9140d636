"""`ledger members update|reactivate`, and names and user ids checked on every way in (a CR/LF
or Korean user id, once accepted, broke every sync of the member: Popbill's header refuses it)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from ledger.members.models import Member
from ledger.members.service import MemberError, MemberInput, parse_member, read_members_csv
from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from ledger.sync.service import sync_member
from tests.cli.helpers import add_members, run
from tests.conftest import client_settings, small_config

CORP = "1234567890"
BAD_USER_IDS = ["a\r\nb", "line\n", "홍길동", "with space", "tab\t", "x" * 51, "nul\x00"]
BAD_NAMES = ["line\nbreak", "cr\rreturn", "bell\x07", "sep\u2028arator", "x" * 201]


@pytest.fixture
def member(clean_engine):
    add_members(clean_engine, MemberInput(CORP, name="old"))
    return clean_engine


def stored(engine) -> tuple:
    with engine.connect() as conn:
        return conn.execute(select(Member.name, Member.user_id, Member.low_balance_threshold, Member.active)).one()


def test_update_changes_only_what_is_given(member):
    result = run("members", "update", CORP, "--name", "팝빌 테스트상사", "--threshold", "50000")
    assert result.exit_code == 0, result.output
    assert stored(member) == ("팝빌 테스트상사", None, Decimal("50000"), True)
    assert run("members", "update", "123-45-67890", "--user-id", "testkorea").exit_code == 0  # hyphens are fine
    assert stored(member) == ("팝빌 테스트상사", "testkorea", Decimal("50000"), True)
    assert run("members", "update", CORP, "--user-id", "", "--threshold", "").exit_code == 0  # '' clears
    assert stored(member) == ("팝빌 테스트상사", None, None, True)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["members", "update", CORP], "nothing to change"),
        (["members", "update", "9999999999", "--name", "x"], "not a member"),
        (["members", "update", "12", "--name", "x"], "CorpNum"),
        (["members", "reactivate", "9999999999"], "not a member"),
    ],
)
def test_update_and_reactivate_refuse_bad_input(member, args, needle):
    result = run(*args)
    assert result.exit_code == 2 and needle in result.stderr, result.output
    assert stored(member) == ("old", None, None, True)


def test_deactivate_then_reactivate(member):
    assert run("members", "deactivate", CORP).exit_code == 0
    assert stored(member)[3] is False
    result = run("members", "reactivate", CORP)
    assert result.exit_code == 0 and "reactivated 1234567890" in result.stdout
    assert [m["active"] for m in json.loads(run("members", "list", "--json").stdout)] == [True]


@pytest.mark.parametrize("user_id", BAD_USER_IDS)
def test_bad_user_ids_are_refused_everywhere(member, user_id):
    for args in (["members", "add", "2208112345", "--user-id", user_id], ["members", "update", CORP, "--user-id", user_id]):
        result = run(*args)
        assert result.exit_code == 2 and "user_id" in result.stderr, result.output
    with pytest.raises(MemberError, match="user_id"):
        parse_member("2208112345", None, user_id, None)
    if user_id.strip() == user_id:  # an import trims the space around a cell, as spreadsheets show it
        with pytest.raises(MemberError, match=r"line \d: user_id"):
            read_members_csv(f'corp_num,user_id\n2208112345,"{user_id}"\n')
    assert stored(member) == ("old", None, None, True)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_with_control_characters_are_refused_everywhere(member, name):
    for args in (["members", "add", "2208112345", "--name", name], ["members", "update", CORP, "--name", name]):
        result = run(*args)
        assert result.exit_code == 2 and "name" in result.stderr, result.output
    with pytest.raises(MemberError, match=r"line \d: name"):
        read_members_csv(f'corp_num,name\n2208112345,"{name}"\n')
    assert stored(member) == ("old", None, None, True)


def test_good_names_and_user_ids_are_kept_and_the_member_syncs(member):
    """Korean names, and any printable-ASCII user id up to 50 characters, pass and sync."""
    user_id = "Test_korea-01.x@" + "y" * 34
    assert len(user_id) == 50
    assert run("members", "update", CORP, "--name", "(주)팝빌 · 테스트", "--user-id", user_id).exit_code == 0
    assert stored(member)[:2] == ("(주)팝빌 · 테스트", user_id)
    with Simulator(small_config(history_days=5)) as sim, PopbillClient(client_settings(sim)) as client:
        result = sync_member(member, client, CORP, "usage", today=sim.world.today())
        assert result.status == "succeeded" and result.api_calls > 0, result.error
