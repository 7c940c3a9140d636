"""Member imports as Korean Excel writes them: CP949 or UTF-8 (BOM or not), Korean headers,
re-imports that update or skip, and errors that name the line."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from ledger.members.models import Member
from ledger.members.service import MemberError, MemberInput, add_member, import_members

KOREAN = '사업자번호,상호,아이디,임계값\r\n1234567890,(주)가나다상사,user1,"5,000"\r\n220-81-12345,한빛전자,,\r\n'


def members(db) -> dict[str, Member]:
    return {m.corp_num: m for m in db.scalars(select(Member))}


@pytest.mark.parametrize("encoding", ["cp949", "euc-kr", "utf-8-sig", "utf-8"])
def test_korean_excel_files_in_every_encoding(db, tmp_path, encoding):
    path = tmp_path / "members.csv"
    path.write_bytes(KOREAN.encode(encoding))
    result = import_members(db, path)
    assert result.encoding == ("cp949" if encoding in ("cp949", "euc-kr") else "utf-8-sig")
    found = members(db)
    assert found["1234567890"].name == "(주)가나다상사" and found["1234567890"].user_id == "user1"
    assert found["1234567890"].low_balance_threshold == Decimal(5000)
    assert found["2208112345"].name == "한빛전자" and found["2208112345"].user_id is None


def test_a_wrong_encoding_names_the_line(db, tmp_path):
    path = tmp_path / "members.csv"
    path.write_bytes("corp_num,name\n1234567890,가나다\n".encode("cp949"))
    with pytest.raises(MemberError, match="line 2: not valid utf-8"):
        import_members(db, path, encoding="utf-8")
    with pytest.raises(MemberError, match="--encoding: unknown encoding"):
        import_members(db, path, encoding="klingon")
    assert members(db) == {}


def test_reimport_refuses_updates_or_skips(db, tmp_path):
    add_member(db, MemberInput("1234567890", name="옛 이름", user_id="old", threshold=Decimal(1)))
    add_member(db, MemberInput("2208112345", name="그대로"))
    path = tmp_path / "members.csv"
    path.write_text("상호,사업자번호,아이디\n새 이름,1234567890,new\n새 회원,1018212345,\n바뀐,2208112345,u2\n",
                    encoding="utf-8")  # fmt: skip
    with pytest.raises(MemberError, match=r"line 2: CorpNum 1234567890 is already a member .*line\(s\) 2, 4"):
        import_members(db, path)
    assert len(members(db)) == 2

    skipped = import_members(db, path, existing="skip")
    assert (len(skipped.added), len(skipped.updated), skipped.skipped) == (1, 0, ["1234567890", "2208112345"])
    assert members(db)["1234567890"].name == "옛 이름"

    path.write_text("상호,사업자번호,아이디\n새 이름,1234567890,new\n바뀐,2208112345,u2\n", encoding="utf-8")
    updated = import_members(db, path, existing="update")
    found = members(db)
    assert len(updated.updated) == 2 and not updated.added
    assert (found["1234567890"].name, found["1234567890"].user_id) == ("새 이름", "new")
    assert found["1234567890"].low_balance_threshold == Decimal(1)  # no threshold column: left as it was
    assert (found["2208112345"].name, found["2208112345"].user_id) == ("바뀐", "u2")


def test_bad_korean_line_is_named(db, tmp_path):
    path = tmp_path / "members.csv"
    path.write_bytes("사업자번호,상호,임계값\n1234567890,가,100\n2208112345,나,많이\n".encode("cp949"))
    with pytest.raises(MemberError, match="line 3: threshold"):
        import_members(db, path)
    path.write_bytes("사업자번호,상호,색깔\n1234567890,가,빨강\n".encode("cp949"))
    with pytest.raises(MemberError, match="line 1: unknown column.*색깔"):
        import_members(db, path)
    assert members(db) == {}
