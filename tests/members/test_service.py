"""Members: checks run before any write, imports are all or nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.members.models import Member
from ledger.members.service import (
    MemberError,
    MemberInput,
    add_member,
    import_members,
    list_members,
    parse_member,
    set_active,
)


def count(db) -> int:
    return db.scalar(select(func.count()).select_from(Member))


def test_add_and_list(db):
    add_member(db, parse_member("123-45-67890", "상사", "user01", "5000.5"))
    add_member(db, parse_member("2208112345", None, None, None))
    members = list_members(db)
    assert [m.corp_num for m in members] == ["1234567890", "2208112345"]
    assert members[0].low_balance_threshold == Decimal("5000.5") and members[0].active


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("12345", None, None, None), "CorpNum"),
        (("1234567890", None, "u" * 51, None), "UserID"),
        (("1234567890", None, None, "lots"), "threshold"),
        (("1234567890", None, None, "-1"), "threshold"),
        (("1234567890", "x" * 201, None, None), "name"),
    ],
)
def test_bad_member_names_the_field(args, field):
    with pytest.raises(MemberError, match=field):
        parse_member(*args)


def test_duplicate_is_refused(db):
    add_member(db, MemberInput("1234567890"))
    with pytest.raises(MemberError, match="already a member"):
        add_member(db, MemberInput("1234567890"))


def test_deactivate(db):
    add_member(db, MemberInput("1234567890"))
    set_active(db, "1234567890", False)  # as `ledger members deactivate` does
    assert list_members(db, active_only=True) == []
    with pytest.raises(MemberError, match="not a member"):
        set_active(db, "2208112345", False)


def test_import_all(db, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("corp_num,name,user_id,threshold\n1234567890,가,u1,100\n\n220-81-12345,나,,\n", encoding="utf-8")
    assert len(import_members(db, path).added) == 2
    assert count(db) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("corp_num,name\n1234567890,a\n12345,b\n", "line 3: CorpNum"),
        ("corp_num,name\n1234567890,a\n1234567890,b\n", "line 3: CorpNum 1234567890 repeats line 2"),
        ("corp_num,threshold\n1234567890,abc\n", "line 2: threshold"),
        ("corp_num,name\n1234567890,a,extra\n", "line 2: more fields"),
        ("name\nx\n", "line 1: the header"),
        ("corp_num,colour\n1234567890,red\n", "line 1: unknown column"),
        ("corp_num\n", "no members"),
    ],
)
def test_bad_import_names_the_line_and_writes_nothing(db, tmp_path, content, message):
    path = tmp_path / "m.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(MemberError, match=message):
        import_members(db, path)
    assert count(db) == 0


def test_import_refuses_existing_members_whole(db, tmp_path):
    add_member(db, MemberInput("2208112345"))
    path = tmp_path / "m.csv"
    path.write_text("corp_num\n1234567890\n2208112345\n", encoding="utf-8")
    with pytest.raises(MemberError, match="line 3: CorpNum 2208112345 is already a member"):
        import_members(db, path)
    assert count(db) == 1
