"""Writing one page of history as one batch.

Usage pages (the bulk of the volume) are COPYed into a temporary table and merged with one
INSERT ... ON CONFLICT; payments and refunds are few, and have mutable fields whose every
change is recorded, so they are compared with what is stored and upserted in one statement.
Nothing here commits: the caller commits the page together with the sync state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools

import psycopg
from sqlalchemy import Connection, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert

from ledger import jsonutil
from ledger.amounts import wire_amount_text
from ledger.history import identity
from ledger.history.models import Payment, Refund, StateChange
from ledger.kst import KST, parse_popbill_datetime
from ledger.popbill.models import PaymentHistory, RefundHistory


@dataclasses.dataclass
class WriteCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: WriteCounts) -> WriteCounts:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self

    @property
    def all_known(self) -> bool:
        return self.inserted == 0 and self.updated == 0


USAGE_COLUMNS = (
    "member_id", "row_key", "occurrence", "tx_dt", "item_code", "tx_type", "tx_point", "balance",
    "service_user_id", "user_id", "user_name", "raw",
)  # fmt: skip
_COLUMN_LIST = ", ".join(USAGE_COLUMNS)
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_field(value) -> str:
    """One field in COPY's text format."""
    if value is None:
        return "\\N"
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def _code(value) -> str:
    """The item_code / tx_type column: as int(value) would store it."""
    if type(value) is int:
        return str(value)
    return "\\N" if value is None or value == "" else str(int(value))


def _amount(value) -> str:
    """The tx_point / balance column, exact (ledger.amounts)."""
    text = wire_amount_text(value)
    return "\\N" if text is None else text


_HOURS: dict[str, str | None] = {}  # yyyyMMddHH -> "yyyy-MM-ddTHH:" and its KST offset ("+09:00" ...)


def kst_hour(hour: str) -> str | None:
    """The text of the hour and the offset KST had in it, or None in an hour in which KST
    moved (1987-88 and before); looked up once an hour, not once a row."""
    y, m, d, h = int(hour[:4]), int(hour[4:6]), int(hour[6:8]), int(hour[8:10])
    first = dt.datetime(y, m, d, h, tzinfo=KST).isoformat()
    last = dt.datetime(y, m, d, h, 59, 59, tzinfo=KST).isoformat()
    return f"{first[:14]}\x00{first[19:]}" if first[19:] == last[19:] else None


def _tx_dt(value) -> str:
    """The tx_dt column: parse_popbill_datetime(value).isoformat(), the same text, from the
    yyyyMMdd[HHmmss] wire text by slicing."""
    if type(value) is str and value.isdigit() and value.isascii():
        if len(value) == 8:
            value += "000000"
        if len(value) == 14:
            hour = _HOURS.get(value[:10], "")
            if hour == "":
                if len(_HOURS) > 50_000:
                    _HOURS.clear()
                hour = _HOURS[value[:10]] = kst_hour(value[:10])
            if hour is not None:
                return hour.replace("\x00", f"{value[10:12]}:{value[12:]}", 1)
    return parse_popbill_datetime(value).isoformat()


def usage_line(member: str, raw: dict, key: str, occurrence: int) -> str:
    get = raw.get
    service_user, user, name, payload = get("serviceUserID"), get("userID"), get("userName"), jsonutil.dumps(raw)
    texts = f"{service_user}\t{user}\t{name}\t{payload}"
    if (
        type(service_user) is not str or type(user) is not str or type(name) is not str
        or texts.count("\t") != 3 or "\\" in texts or "\n" in texts or "\r" in texts
    ):  # fmt: skip
        # Not the common case (all three text, nothing to escape): field by field.
        texts = f"{copy_field(service_user)}\t{copy_field(user)}\t{copy_field(name)}\t{copy_field(payload)}"
    return (
        f"{member}\t{key}\t{occurrence}\t{_tx_dt(get('txDT'))}\t{_code(get('itemCode'))}\t{_code(get('txType'))}\t"
        f"{_amount(get('txPoint'))}\t{_amount(get('balance'))}\t{texts}\n"
    )


def prepare_usage_copy(member_id: int, rows, counter: identity.OccurrenceCounter) -> str:
    """The page as COPY text, straight from the wire rows (dicts as decoded, already screened):
    each column is the text UseHistory.from_wire's typed value would give, without building it
    (Decimal, datetime), which cost more than the rest of the row. Pure Python with no
    database, so it can run in the prefetch thread while the database merges the page before."""
    member, key, number = str(member_id), identity.usage_key, counter.next
    lines = []
    for raw in rows:
        k = key(raw)
        lines.append(usage_line(member, raw, k, number(k)))
    return "".join(lines)


def _copy(conn: Connection, table: str, payload: str | bytes) -> None:
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({_COLUMN_LIST}) FROM STDIN") as copy:
        copy.write(payload)


def write_usage_copy(
    conn: Connection, payload: str | bytes, seen_at: dt.datetime, *, likely_new: bool = False
) -> WriteCounts:
    """Write a prepared page of usage (COPY text, one line a row).

    likely_new (a window past the high-water mark): COPY straight into usages, a third
    cheaper for the database; if any row is already there (a run that died after writing
    it), that savepoint is rolled back and the page is merged instead. Otherwise: COPY
    into a temporary table and merge with one INSERT ... ON CONFLICT. One page per
    transaction: the temporary table is emptied on commit.
    """
    if not payload:
        return WriteCounts()
    lines = payload.count(b"\n" if type(payload) is bytes else "\n")
    if likely_new:
        savepoint = conn.begin_nested()
        try:
            _copy(conn, "usages", payload)
        except psycopg.errors.UniqueViolation:
            savepoint.rollback()
        else:
            savepoint.commit()
            return WriteCounts(inserted=lines)
    conn.execute(
        text("CREATE TEMP TABLE IF NOT EXISTS usages_incoming (LIKE usages INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    )
    _copy(conn, "usages_incoming", payload)
    merged = conn.execute(
        text(
            f"""
            INSERT INTO usages ({_COLUMN_LIST}, first_seen_at, last_seen_at)
            SELECT {_COLUMN_LIST}, :seen_at, :seen_at FROM usages_incoming
            ON CONFLICT (member_id, row_key, occurrence) DO NOTHING
            """
        ),
        {"seen_at": seen_at},
    ).rowcount
    # No TRUNCATE (it gives the temp table a new file each time): ON COMMIT DELETE ROWS
    # empties it, and the caller commits after every page. A row already stored is left as
    # it is (usage rows never change): no new row version for what a re-sync reads again.
    return WriteCounts(inserted=merged, unchanged=lines - merged)


def _payment_values(row: PaymentHistory) -> dict:
    return {
        "reg_dt": row.reg_dt, "state_dt": row.state_dt, "settle_state": row.settle_state,
        "product_type": row.product_type, "product_name": row.product_name, "settle_type": row.settle_type,
        "settler_name": row.settler_name, "settler_email": row.settler_email, "settle_cost": row.settle_cost,
        "settle_point": row.settle_point,
    }  # fmt: skip


def _refund_values(row: RefundHistory) -> dict:
    return {
        "req_dt": row.req_dt, "state": row.state, "request_point": row.request_point,
        "account_bank": row.account_bank, "account_num": row.account_num, "account_name": row.account_name,
        "reason": row.reason,
    }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _MutableSpec:
    model: type
    key_fields: tuple[str, ...]
    mutable: tuple[str, ...]
    values: object
    change_fk: str


PAYMENTS = _MutableSpec(Payment, identity.PAYMENT_KEY, ("settle_state", "state_dt"), _payment_values, "payment_id")
REFUNDS = _MutableSpec(Refund, identity.REFUND_KEY, ("state",), _refund_values, "refund_id")


@functools.cache
def _mutable_statements(spec: _MutableSpec) -> tuple:
    """The page's stored rows (locked), and the upsert of its rows: built once, so SQLAlchemy
    compiles each once; the identities travel as two arrays, not a list rendered per page,
    and the upsert's rows as one executemany (sent as multi-row VALUES)."""
    model = spec.model
    find = (
        select(model.id, model.row_key, model.occurrence, *[getattr(model, f) for f in spec.mutable])
        .where(model.member_id == bindparam("m"), text("row_key = ANY(CAST(:keys AS uuid[]))"))
        .with_for_update()
    )
    upsert = insert(model)
    upsert = upsert.on_conflict_do_update(
        constraint=f"uq_{model.__tablename__}_member_id_row_key_occurrence",
        set_={**{f: upsert.excluded[f] for f in spec.mutable}, "raw": upsert.excluded.raw,
              "last_seen_at": upsert.excluded.last_seen_at},
    ).returning(model.id, model.row_key, model.occurrence)  # fmt: skip
    return find, upsert


def _as_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _assign_occurrences(spec: _MutableSpec, incoming: list[dict], stored_rows, counter) -> None:
    """Set each incoming row's occurrence (see write_mutable_page), claiming it in `counter`."""
    by_key: dict[str, list[dict]] = {}
    for values in incoming:
        by_key.setdefault(values["row_key"], []).append(values)
    stored_by_key: dict[str, dict[int, tuple]] = {}
    for s in stored_rows:
        stored_by_key.setdefault(s.row_key, {})[s.occurrence] = tuple(getattr(s, f) for f in spec.mutable)
    for key, group in by_key.items():
        taken = counter.claimed(key)
        known = stored_by_key.get(key, {})
        free = {occ: state for occ, state in known.items() if occ not in taken}
        group.sort(key=lambda v: tuple(_as_text(v[f]) or "" for f in spec.mutable))
        waiting = []
        for values in group:
            state = tuple(values[f] for f in spec.mutable)
            match = min((occ for occ, held in free.items() if held == state), default=None)
            if match is None:
                waiting.append(values)
            else:
                values["occurrence"] = counter.claim(key, match)
                del free[match]
        spare = sorted(free)
        fresh = (n for n in itertools.count() if n not in known and n not in taken)
        for values in waiting:
            values["occurrence"] = counter.claim(key, spare.pop(0) if spare else next(fresh))


def write_mutable_page(
    conn: Connection,
    spec: _MutableSpec,
    member_id: int,
    rows: tuple,
    counter: identity.OccurrenceCounter,
    seen_at: dt.datetime,
) -> WriteCounts:
    """Upsert payments or refunds; record a state change for every mutable field that moved.

    Rows with one key (the same payment or refund as far as its immutable fields go) take
    their occurrences by content, not by the order upstream lists them: first each takes a
    stored occurrence whose mutable fields it matches exactly, then the rest, in the order
    of their content, take the stored ones left, then new ones. Two tied payments listed in
    another order the next time change nothing."""
    if not rows:
        return WriteCounts()
    incoming = []
    for row in rows:
        incoming.append(
            {"member_id": member_id, "row_key": identity.row_key(row.raw, spec.key_fields), "raw": row.raw,
             "first_seen_at": seen_at, "last_seen_at": seen_at, **spec.values(row)}
        )  # fmt: skip
    find, upsert = _mutable_statements(spec)
    keys = sorted({r["row_key"] for r in incoming})
    stored_rows = conn.execute(find, {"m": member_id, "keys": keys}).all()
    stored = {(s.row_key, s.occurrence): s for s in stored_rows}
    _assign_occurrences(spec, incoming, stored_rows, counter)
    counts, changes, written, moves = WriteCounts(), [], [], []
    for values in incoming:
        ident = (values["row_key"], values["occurrence"])
        before = stored.get(ident)
        if before is None:
            counts.inserted += 1
            written.append(values)
            continue
        moved = [f for f in spec.mutable if getattr(before, f) != values[f]]
        if not moved:
            counts.unchanged += 1  # left as it is: no new row version for a row read again unchanged
            continue
        counts.updated += 1
        written.append(values)
        moves.append((ident, before, values, moved))
    ids = {(r.row_key, r.occurrence): r.id for r in conn.execute(upsert, written)} if written else {}
    for ident, before, values, moved in moves:
        for field in moved:
            changes.append(
                {spec.change_fk: ids[ident], "field": field, "old_value": _as_text(getattr(before, field)),
                 "new_value": _as_text(values[field]), "seen_at": seen_at}
            )  # fmt: skip
    if changes:
        conn.execute(insert(StateChange), changes)
    return counts
