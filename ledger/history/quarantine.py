"""Keeping the history rows screening refused (ledger.history.screening), in the page's
transaction, so a row is quarantined exactly when the page around it is written."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert

from ledger.history.models import QuarantinedRow

PAYLOAD_CHARS = 20_000  # enough to see what was wrong; the whole row may be megabytes


def payload_text(row: object) -> str:
    """The row as JSON text: NaN and Infinity as sent, Decimals as numbers' text, and every
    character PostgreSQL could refuse escaped."""
    text = json.dumps(row, ensure_ascii=False, default=str)
    try:
        text.encode()
    except UnicodeEncodeError:  # an unpaired surrogate in a row that was refused before repair
        text = json.dumps(row, ensure_ascii=True, default=str)
    return text


def keep(conn: Connection, member_id: int, kind: str, refused: list[tuple[object, str]], seen_at: dt.datetime) -> None:
    """Record (row, reason) pairs; a row already kept only has its last sighting moved."""
    values = {}
    for row, reason in refused:
        text = payload_text(row)
        h = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        digest = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        values[digest] = {
            "member_id": member_id, "kind": kind, "fingerprint": digest, "reason": reason,
            "payload": text[:PAYLOAD_CHARS], "payload_chars": len(text),
            "first_seen_at": seen_at, "last_seen_at": seen_at,
        }  # fmt: skip
    if not values:
        return
    statement = insert(QuarantinedRow).values(list(values.values()))
    conn.execute(
        statement.on_conflict_do_update(
            constraint="uq_quarantined_rows_member_id_kind_fingerprint",
            set_={
                "reason": statement.excluded.reason,
                "last_seen_at": statement.excluded.last_seen_at,
                "times_seen": QuarantinedRow.times_seen + 1,
            },
        )
    )
