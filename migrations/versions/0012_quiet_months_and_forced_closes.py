"""v_monthly_statements has every member-month from the member's first row to the current
month, quiet ones included; a forced month close keeps its reason

0011's v_monthly_statements had a row only for months with usage rows, so a SQL total over the
view lost quiet member-months (and their pending deposits). Here each member's months run from
its first row of any history (usage, payment or refund; each found by one probe of its
(member_id, date) index) to the current Korean month (or its last usage, if later), and a month
without usage rows opens and closes at the balance carried from the last row before it (one
more probe), 0 when there is none. Months with rows are computed as 0011 computes them: the
same figures, still reached through the (member_id, tx_dt) index.

`month_closes.forced_reason`: why a close was made over its failed preconditions
(`ledger close --force --reason`), kept with the close as the rest of the audit trail.

Revision ID: 0012
Revises: 0011
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_KST = "'Asia/Seoul'"
VIEW = "v_monthly_statements"


def _migration(name: str):
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Each member's Korean months from its first row of any history to the current Korean month
# (or its last usage's month when that is later). Same columns as 0011's MEMBER_MONTHS.
MEMBER_MONTHS = f"""
        members m
        CROSS JOIN LATERAL (
            SELECT least((SELECT min(x.tx_dt) FROM usages x WHERE x.member_id = m.id),
                         (SELECT min(p.reg_dt) FROM payments p WHERE p.member_id = m.id),
                         (SELECT min(f.req_dt) FROM refunds f WHERE f.member_id = m.id)) AS first_dt,
                   greatest((SELECT max(x.tx_dt) FROM usages x WHERE x.member_id = m.id), now()) AS last_dt
        ) r
        CROSS JOIN LATERAL generate_series(date_trunc('month', r.first_dt AT TIME ZONE {_KST}),
                                           date_trunc('month', r.last_dt AT TIME ZONE {_KST}),
                                           interval '1 month') AS g(local_month)
        CROSS JOIN LATERAL (SELECT m.id AS member_id, g.local_month::date AS month,
                                   g.local_month AT TIME ZONE {_KST} AS month_start,
                                   (g.local_month + interval '1 month') AT TIME ZONE {_KST} AS month_end) mm
"""


def _body() -> str:
    previous = _migration("0011_sargable_views.py")
    return f"""
        SELECT m.corp_num, m.name AS member_name, mm.month,
               CASE WHEN s.transactions > 0 THEN s.opening_balance ELSE carried.balance END AS opening_balance,
               s.deposits, s.bonus_credits, s.usage_points, s.refunds, s.adjustments,
               CASE WHEN s.transactions > 0 THEN s.closing_balance ELSE carried.balance END AS closing_balance,
               s.transactions, s.unknown_type_rows,
               (SELECT count(*) FROM discrepancies d WHERE d.member_id = mm.member_id AND d.status = 'open')
                   AS open_discrepancies,
               s.unclassified_points, w.deposits_won, w.pending_deposits_won, w.cancelled_deposits_won,
               s.sign_disagreements,
               EXISTS (SELECT 1 FROM month_closes c WHERE c.member_id = mm.member_id AND c.month = mm.month
                       AND c.reopened_at IS NULL) AS closed
        FROM {MEMBER_MONTHS}
        CROSS JOIN LATERAL (
            SELECT (array_agg(balance - points ORDER BY tx_dt, id))[1] AS opening_balance,
                   coalesce(sum(magnitude) FILTER (WHERE category = 'charge'), 0) AS deposits,
                   coalesce(sum(magnitude) FILTER (WHERE category = 'bonus'), 0) AS bonus_credits,
                   coalesce(sum(magnitude) FILTER (WHERE category = 'use'), 0) AS usage_points,
                   coalesce(sum(magnitude) FILTER (WHERE category = 'refund'), 0) AS refunds,
                   coalesce(sum(points) FILTER (WHERE category = 'adjust'), 0) AS adjustments,
                   (array_agg(balance ORDER BY tx_dt DESC, id DESC))[1] AS closing_balance,
                   count(*) AS transactions,
                   count(*) FILTER (WHERE category IS NULL) AS unknown_type_rows,
                   coalesce(sum(points) FILTER (WHERE category IS NULL), 0) AS unclassified_points,
                   count(*) FILTER (WHERE chain_sign <> direction) AS sign_disagreements
            FROM {previous.SIGNED_ROWS} u
        ) s
        CROSS JOIN LATERAL (
            SELECT CASE WHEN before.found THEN before.balance ELSE 0 END AS balance
            FROM (SELECT true AS found) one
            LEFT JOIN LATERAL (SELECT true AS found, p.balance FROM usages p
                               WHERE p.member_id = mm.member_id AND p.tx_dt < mm.month_start
                               ORDER BY p.tx_dt DESC, p.id DESC LIMIT 1) before ON true
        ) carried
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(won) FILTER (WHERE status = 'settled'), 0) AS deposits_won,
                   coalesce(sum(won) FILTER (WHERE status = 'pending'), 0) AS pending_deposits_won,
                   coalesce(sum(won) FILTER (WHERE status = 'cancelled'), 0) AS cancelled_deposits_won
            FROM v_deposits v WHERE v.corp_num = m.corp_num AND v.month = mm.month
        ) w
        """


COMMENT = (
    "One line per member and Korean month, from the member's first row to the current month (a month "
    "without transactions carries the balance: opening = closing): opening balance + deposits + bonus "
    "- usage - refunds + adjustments + unclassified = closing balance, with the won paid beside the points."
)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _create(body: str, comment: str, columns: dict) -> None:
    op.execute(f"CREATE VIEW {VIEW} AS {body}")
    op.execute(f"COMMENT ON VIEW {VIEW} IS {_literal(comment)}")
    for column, text in columns.items():
        op.execute(f"COMMENT ON COLUMN {VIEW}.{column} IS {_literal(text)}")


def upgrade() -> None:
    _, _, columns = _migration("0004_item_codes_month_closes_and_money_views.py").VIEWS[VIEW]
    columns = {**columns, "opening_balance": "balance before the month's first transaction (carried in a quiet month)",
               "closing_balance": "balance after the month's last transaction (carried in a quiet month)"}  # fmt: skip
    op.execute(f"DROP VIEW {VIEW}")
    _create(_body(), COMMENT, columns)
    op.add_column("month_closes", sa.Column("forced_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("month_closes", "forced_reason")
    previous = _migration("0004_item_codes_month_closes_and_money_views.py").VIEWS[VIEW]
    op.execute(f"DROP VIEW {VIEW}")
    _create(_migration("0011_sargable_views.py").BODIES[VIEW], *previous[1:])
