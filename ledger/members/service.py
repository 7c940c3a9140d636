"""Adding, importing, updating, listing, deactivating and reactivating members. Every check
runs before anything is written (parse_member and the field checks serve every way in: the
CLI, imports, the demo), and an import is all or nothing."""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from charset_normalizer import from_bytes
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.db.among import among
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
    return set(session.scalars(select(Member.corp_num).where(among(Member.corp_num, corp_nums))))


def add_member(session: Session, item: MemberInput) -> Member:
    if _existing(session, [item.corp_num]):
        raise MemberError(f"CorpNum: {item.corp_num} is already a member")
    member = Member(corp_num=item.corp_num, name=item.name, user_id=item.user_id, low_balance_threshold=item.threshold)
    session.add(member)
    session.flush()
    return member


# Korean Excel's headers beside the English ones.
HEADER_ALIASES = {"사업자번호": "corp_num", "사업자등록번호": "corp_num", "상호": "name", "아이디": "user_id",
                  "임계값": "threshold"}  # fmt: skip


def read_members_csv(content: str) -> list[tuple[int, MemberInput]]:
    """Parse a CSV with a header naming corp_num (or 사업자번호) and, optionally, name (상호),
    user_id (아이디) and threshold (임계값)."""
    reader = csv.DictReader(io.StringIO(content))
    raw_header = reader.fieldnames or []
    header = [HEADER_ALIASES.get(c.strip(), c.strip()) for c in raw_header]
    reader.fieldnames = header
    if "corp_num" not in header:
        raise MemberError("line 1: the header must name a corp_num (사업자번호) column")
    unknown = [raw for raw, c in zip(raw_header, header, strict=True) if c not in CSV_COLUMNS]
    if unknown:
        raise MemberError(
            f"line 1: unknown column(s) {', '.join(unknown)}; expected {', '.join(CSV_COLUMNS)} "
            f"or {', '.join(HEADER_ALIASES)}"
        )
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
                (record.get("corp_num") or "").strip().replace("-", ""),  # Excel keeps 123-45-67890 as typed
                (record.get("name") or "").strip() or None,
                (record.get("user_id") or "").strip() or None,
                (record.get("threshold") or "").strip().replace(",", "") or None,
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


def decode_members_file(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The text and the encoding it was read with: UTF-8 (with or without a BOM) first, then
    what charset-normalizer finds, CP949 for any Korean legacy encoding (Korean Excel's "CSV
    (쉼표로 분리)"); or exactly the encoding given."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise MemberError(f"--encoding: unknown encoding {encoding!r}") from None
        candidates = [encoding]
    else:
        candidates = ["utf-8-sig"]
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:

            best = from_bytes(data).best()
            guess = best.encoding if best else None
            korean = guess in (None, "cp949", "euc_kr", "johab", "iso2022_kr")
            candidates = ["cp949"] if korean else [guess, "cp949"]
    for candidate in candidates:
        try:
            return data.decode(candidate), codecs.lookup(candidate).name
        except UnicodeDecodeError as exc:
            failure = exc
    line = data[: failure.start].count(b"\n") + 1
    hint = "" if encoding else "; give --encoding"
    raise MemberError(f"line {line}: not valid {candidates[-1]} text{hint}")


@dataclass
class ImportResult:
    added: list[Member]
    updated: list[Member]
    skipped: list[str]
    encoding: str


def import_members(session: Session, path: Path, *, encoding: str | None = None, existing: str = "refuse"
                   ) -> ImportResult:  # fmt: skip
    """Add every member of the file; all or nothing. Members already known are refused (naming
    their lines), updated (`existing="update"`: name, user id and threshold, for the columns the
    file has) or skipped (`existing="skip"`)."""
    if existing not in ("refuse", "update", "skip"):
        raise MemberError(f"existing: refuse, update or skip, got {existing!r}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MemberError(f"{path}: cannot read: {exc}") from None
    content, used = decode_members_file(data, encoding)
    items = read_members_csv(content)
    columns = set(csv.DictReader(io.StringIO(content)).fieldnames or [])
    columns = {HEADER_ALIASES.get(c.strip(), c.strip()) for c in columns}
    known = {m.corp_num: m for m in session.scalars(
        select(Member).where(among(Member.corp_num, [i.corp_num for _, i in items])).with_for_update())}  # fmt: skip
    if known and existing == "refuse":
        lines = [str(line) for line, i in items if i.corp_num in known]
        raise MemberError(
            f"line {lines[0]}: CorpNum {next(i.corp_num for _, i in items if i.corp_num in known)} is already a member "
            f"({len(known)} such in the file, on line(s) {', '.join(lines)}); use --update or --skip-existing"
        )
    result = ImportResult([], [], [], used)
    for _, item in items:
        member = known.get(item.corp_num)
        if member is None:
            member = Member(corp_num=item.corp_num, name=item.name, user_id=item.user_id,
                            low_balance_threshold=item.threshold)  # fmt: skip
            session.add(member)
            result.added.append(member)
        elif existing == "skip":
            result.skipped.append(item.corp_num)
        else:
            for column, attribute, value in (("name", "name", item.name), ("user_id", "user_id", item.user_id),
                                             ("threshold", "low_balance_threshold", item.threshold)):  # fmt: skip
                if column in columns:
                    setattr(member, attribute, value)
            result.updated.append(member)
    session.flush()
    return result


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
