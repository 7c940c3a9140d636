"""Where every member's sync stands: last run per kind, rows held, failures."""

from __future__ import annotations

from sqlalchemy import Engine, text

_STATUS = text(
    """
    WITH kinds(kind, tbl) AS (VALUES ('payments', 'payments'), ('usage', 'usages'), ('refunds', 'refunds')),
    held AS (
        SELECT member_id, 'payments' AS kind, count(*) AS n FROM payments GROUP BY member_id
        UNION ALL SELECT member_id, 'usage', count(*) FROM usages GROUP BY member_id
        UNION ALL SELECT member_id, 'refunds', count(*) FROM refunds GROUP BY member_id
    ),
    last_run AS (
        SELECT DISTINCT ON (member_id, kind) member_id, kind, status, finished_at, error
        FROM sync_runs WHERE status <> 'skipped' ORDER BY member_id, kind, started_at DESC, id DESC
    ),
    failures AS (
        SELECT member_id, kind, count(*) AS n FROM sync_runs
        WHERE status = 'failed' AND started_at > now() - interval '7 days' GROUP BY member_id, kind
    )
    SELECT m.corp_num, m.name, m.active, k.kind, r.status AS last_status, r.finished_at AS last_finished_at,
           s.last_success_at, s.high_water, coalesce(h.n, 0) AS rows_held, coalesce(f.n, 0) AS failures_7d,
           r.error AS last_error
    FROM members m CROSS JOIN kinds k
    LEFT JOIN last_run r ON r.member_id = m.id AND r.kind = k.kind
    LEFT JOIN sync_states s ON s.member_id = m.id AND s.kind = k.kind
    LEFT JOIN held h ON h.member_id = m.id AND h.kind = k.kind
    LEFT JOIN failures f ON f.member_id = m.id AND f.kind = k.kind
    ORDER BY m.corp_num, k.kind
    """
)


def sync_status(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(_STATUS)]
