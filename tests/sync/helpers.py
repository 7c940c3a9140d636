from __future__ import annotations

import hashlib
import json

from sqlalchemy import text

TABLES = {"usage": "usages", "payments": "payments", "refunds": "refunds"}


def canonical(rows) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in rows)


def content_hash(rows) -> str:
    return hashlib.sha256("\n".join(canonical(rows)).encode()).hexdigest()


def stored_raw(engine, corp_num: str, kind: str) -> list[dict]:
    with engine.connect() as conn:
        return list(
            conn.scalars(
                text(f"SELECT t.raw FROM {TABLES[kind]} t JOIN members m ON m.id = t.member_id WHERE m.corp_num = :c"),
                {"c": corp_num},
            )
        )


def truth(sim, corp_num: str, kind: str) -> list[dict]:
    world = sim.world
    return {"usage": world.usage_truth, "payments": world.payments_truth, "refunds": world.refunds_truth}[kind](
        corp_num
    )


def assert_ledger_equals_truth(engine, sim, corp_nums, kinds=("usage", "payments", "refunds")) -> None:
    for corp in corp_nums:
        for kind in kinds:
            stored, expected = stored_raw(engine, corp, kind), truth(sim, corp, kind)
            assert len(stored) == len(expected), f"{corp} {kind}: {len(stored)} rows stored, {len(expected)} expected"
            assert content_hash(stored) == content_hash(expected), f"{corp} {kind}: content differs"
