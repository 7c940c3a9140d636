"""The meaning of raw codes, read from the tables where a partner keeps them (tx_types,
state_codes), so Python and the accountants' views always agree."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from ledger.popbill.codes import Codes


def load_codes(bind: Engine | Connection) -> Codes:
    def read(conn: Connection) -> Codes:
        types = conn.execute(text("SELECT code, direction, category FROM tx_types")).all()
        states = conn.execute(text("SELECT kind, code, meaning FROM state_codes")).all()
        if not types or not states:
            return Codes()  # an unmigrated or emptied table: the defaults the tables are seeded with

        def codes(kind: str, meaning: str) -> frozenset[int]:
            return frozenset(s.code for s in states if s.kind == kind and s.meaning == meaning)

        return Codes(
            settle_pending=codes("settle", "pending"),
            settle_done=codes("settle", "done"),
            settle_cancelled=codes("settle", "cancelled"),
            refund_pending=codes("refund", "pending"),
            refund_done=codes("refund", "done"),
            refund_cancelled=codes("refund", "cancelled"),
            credit_tx_types=frozenset(t.code for t in types if t.direction > 0),
        )

    if isinstance(bind, Connection):
        return read(bind)
    with bind.connect() as conn:
        return read(conn)


class ServiceNames:
    """itemCode -> service name, as the item_codes table says; an unknown code is named as
    unknown with its number, never guessed."""

    def __init__(self, names: dict[int, tuple[str, str]]) -> None:
        self._names = names

    def ko(self, code: int | None) -> str:
        return self._names[code][0] if code in self._names else f"알 수 없는 서비스 ({code})"

    def en(self, code: int | None) -> str:
        return self._names[code][1] if code in self._names else f"unknown service ({code})"


def load_service_names(bind: Engine | Connection) -> ServiceNames:
    def read(conn: Connection) -> ServiceNames:
        return ServiceNames({r.code: (r.name_ko, r.name_en)
                             for r in conn.execute(text("SELECT code, name_ko, name_en FROM item_codes"))})  # fmt: skip

    if isinstance(bind, Connection):
        return read(bind)
    with bind.connect() as conn:
        return read(conn)
