"""Adding, importing, updating, listing, deactivating and reactivating members. Every check
runs before anything is written (parse_member and the field checks serve every way in: the
CLI, imports, the demo), and an import is all or nothing."""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.errors import UserInputError
from ledger.members.models import Member
from ledger.popbill import validation
from ledger.popbill.errors import InvalidRequestError

CSV_COLUMNS = ("corp_num", "name", "user_id", "threshold")
NAME_MAX = 200
# A threshold above any plausible balance is a typo (1e9999 would be stored and never fire).
THRESHOLD_MAX = Decimal("1000000000000")


class MemberError(UserInputError):
    """Bad member input; the message names the field and, for imports, the line."""


@dataclass(frozen=True)
class MemberInput:
    corp_num: str
    name: str | None = None
    user_id: str | None = None
    threshold: Decimal | None = None


def check_user_id(user_id: str | None) -> str | None:
    try:
        return validation.user_id(user_id or None)
    except InvalidRequestError as exc:
        raise MemberError(f"user_id (Popbill UserID): {exc.message.removeprefix('UserID: ')}") from None


def check_name(name: str | None) -> str | None:
    """A business name for reports: any script, but no control characters or line breaks."""
    if name is None or not name.strip():
        return None
    if len(name) > NAME_MAX:
        raise MemberError(f"name: at most {NAME_MAX} characters")
    bad = next((ch for ch in name if unicodedata.category(ch) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise MemberError(f"name: control characters are not allowed (found {bad!r})")
    return name.strip()


def check_threshold(threshold: str | Decimal | None) -> Decimal | None:
    if threshold in (None, ""):
        return None
    try:
        amount = threshold if isinstance(threshold, Decimal) else Decimal(str(threshold).strip())
    except InvalidOperation:
        raise MemberError(f"threshold: not a decimal amount: {threshold!r}") from None
    if not amount.is_finite() or amount < 0:
        raise MemberError(f"threshold: must be zero or more, got {threshold!r}")
    if amount > THRESHOLD_MAX:
        raise MemberError(f"threshold: at most {THRESHOLD_MAX:,} points, got {threshold!r}")
    return amount


def parse_member(corp_num: str, name: str | None, user_id: str | None, threshold: str | Decimal | None) -> MemberInput:
    try:
        corp = validation.corp_num(corp_num)
    except InvalidRequestError as exc:
        raise MemberError(exc.message) from None
    return MemberInput(corp, check_name(name), check_user_id(user_id), check_threshold(threshold))


def _existing(session: Session, corp_nums: list[str]) -> set[str]:
    return set(session.scalars(select(Member.corp_num).where(Member.corp_num.in_(corp_nums))))


def add_member(session: Session, item: MemberInput) -> Member:
    if _existing(session, [item.corp_num]):
        raise MemberError(f"CorpNum: {item.corp_num} is already a member")
    member = Member(corp_num=item.corp_num, name=item.name, user_id=item.user_id, low_balance_threshold=item.threshold)
    session.add(member)
    session.flush()
    return member


def read_members_csv(content: str) -> list[tuple[int, MemberInput]]:
    """Parse a CSV with a header naming corp_num and, optionally, name, user_id, threshold."""
    reader = csv.DictReader(io.StringIO(content))
    header = reader.fieldnames or []
    if "corp_num" not in header:
        raise MemberError("line 1: the header must name a corp_num column")
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise MemberError(f"line 1: unknown column(s) {', '.join(unknown)}; expected {', '.join(CSV_COLUMNS)}")
    items: list[tuple[int, MemberInput]] = []
    first_line: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if None in record:
            raise MemberError(f"line {line}: more fields than the header has")
        if not any((v or "").strip() for v in record.values()):
            continue
        try:
            item = parse_member(
                (record.get("corp_num") or "").strip(),
                (record.get("name") or "").strip() or None,
                (record.get("user_id") or "").strip() or None,
                (record.get("threshold") or "").strip() or None,
            )
        except MemberError as exc:
            raise MemberError(f"line {line}: {exc}") from None
        if item.corp_num in first_line:
            raise MemberError(f"line {line}: CorpNum {item.corp_num} repeats line {first_line[item.corp_num]}")
        first_line[item.corp_num] = line
        items.append((line, item))
    if not items:
        raise MemberError("the file holds no members")
    return items


def import_members(session: Session, path: Path) -> list[Member]:
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MemberError(f"{path}: cannot read: {exc}") from None
    items = read_members_csv(content)
    taken = _existing(session, [i.corp_num for _, i in items])
    if taken:
        line, item = next((line, i) for line, i in items if i.corp_num in taken)
        raise MemberError(f"line {line}: CorpNum {item.corp_num} is already a member ({len(taken)} such in the file)")
    members = [
        Member(corp_num=i.corp_num, name=i.name, user_id=i.user_id, low_balance_threshold=i.threshold) for _, i in items
    ]
    session.add_all(members)
    session.flush()
    return members


def get_member(session: Session, corp_num: str) -> Member:
    try:
        corp = validation.corp_num(corp_num)
    except InvalidRequestError as exc:
        raise MemberError(exc.message) from None
    member = session.scalar(select(Member).where(Member.corp_num == corp))
    if member is None:
        raise MemberError(f"CorpNum: {corp} is not a member (add it with `ledger members add`)")
    return member


def list_members(session: Session, *, active_only: bool = False) -> list[Member]:
    query = select(Member).order_by(Member.corp_num)
    if active_only:
        query = query.where(Member.active.is_(True))
    return list(session.scalars(query))


def set_active(session: Session, corp_num: str, active: bool) -> Member:
    """Deactivate (stop syncing; the ledger stays) or reactivate a member."""
    member = get_member(session, corp_num)
    member.active = active
    session.flush()
    return member


def deactivate_member(session: Session, corp_num: str) -> Member:
    return set_active(session, corp_num, False)


_UNCHANGED = object()


def update_member(session: Session, corp_num: str, *, name=_UNCHANGED, user_id=_UNCHANGED, threshold=_UNCHANGED) -> Member:
    """Change the fields given ('' clears one); every value is checked before any is written."""
    changes = {}
    if name is not _UNCHANGED:
        changes["name"] = check_name(name)
    if user_id is not _UNCHANGED:
        changes["user_id"] = check_user_id(user_id)
    if threshold is not _UNCHANGED:
        changes["low_balance_threshold"] = check_threshold(threshold)
    if not changes:
        raise MemberError("nothing to change: give --name, --user-id or --threshold")
    member = get_member(session, corp_num)
    for field, value in changes.items():
        setattr(member, field, value)
    session.flush()
    return member
