"""reconciliation and accountants views

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 21:05:10.608916
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

TX_TYPES = [
    (1, 1, "charge", "충전", "charge"),
    (2, -1, "use", "사용", "use"),
    (3, 1, "bonus", "보너스", "bonus"),
    (4, -1, "refund", "환불", "refund"),
    (5, 1, "adjust", "조정(증가)", "adjustment up"),
    (6, -1, "adjust", "조정(감소)", "adjustment down"),
]

STATE_CODES = [
    ("settle", 1, "pending", "입금대기", "waiting for the deposit"),
    ("settle", 2, "done", "입금완료", "deposited"),
    ("settle", 3, "cancelled", "취소", "cancelled"),
    ("refund", 1, "pending", "환불신청", "requested"),
    ("refund", 2, "done", "환불완료", "refunded"),
    ("refund", 3, "cancelled", "반려", "rejected"),
]

VIEWS = {
    "v_usage_daily": (
        """
        SELECT m.corp_num, m.name AS member_name,
               (u.tx_dt AT TIME ZONE 'Asia/Seoul')::date AS day,
               u.item_code, u.tx_type, t.category,
               count(*) AS transactions, sum(u.tx_point) AS points
        FROM usages u
        JOIN members m ON m.id = u.member_id
        LEFT JOIN tx_types t ON t.code = u.tx_type
        GROUP BY m.corp_num, m.name, (u.tx_dt AT TIME ZONE 'Asia/Seoul')::date, u.item_code, u.tx_type, t.category
        """,
        "Point transactions per member, Korean day, service (item_code) and type.",
        {
            "day": "Korean calendar day of the transactions",
            "item_code": "Popbill service code (0 for charges, refunds and adjustments)",
            "category": "charge, bonus, use, refund or adjust (from tx_types)",
            "points": "sum of txPoint (magnitudes; the category gives the direction)",
        },
    ),
    "v_monthly_usage_by_service": (
        """
        SELECT m.corp_num, m.name AS member_name,
               date_trunc('month', u.tx_dt AT TIME ZONE 'Asia/Seoul')::date AS month,
               u.item_code, count(*) AS transactions, sum(u.tx_point) AS points
        FROM usages u
        JOIN members m ON m.id = u.member_id
        JOIN tx_types t ON t.code = u.tx_type AND t.category = 'use'
        GROUP BY m.corp_num, m.name, date_trunc('month', u.tx_dt AT TIME ZONE 'Asia/Seoul')::date, u.item_code
        """,
        "Points used per member, Korean month and service (item_code).",
        {"month": "first day of the Korean month", "points": "points used by that service in the month"},
    ),
    "v_monthly_statements": (
        """
        WITH rows AS (
            SELECT u.member_id, u.id, u.tx_dt, u.balance, u.tx_point, t.category, t.direction,
                   date_trunc('month', u.tx_dt AT TIME ZONE 'Asia/Seoul')::date AS month
            FROM usages u LEFT JOIN tx_types t ON t.code = u.tx_type
        ), months AS (
            SELECT member_id, month,
                   (array_agg(balance - direction * tx_point ORDER BY tx_dt, id))[1] AS opening_balance,
                   coalesce(sum(tx_point) FILTER (WHERE category = 'charge'), 0) AS deposits,
                   coalesce(sum(tx_point) FILTER (WHERE category = 'bonus'), 0) AS bonus_credits,
                   coalesce(sum(tx_point) FILTER (WHERE category = 'use'), 0) AS usage_points,
                   coalesce(sum(tx_point) FILTER (WHERE category = 'refund'), 0) AS refunds,
                   coalesce(sum(direction * tx_point) FILTER (WHERE category = 'adjust'), 0) AS adjustments,
                   (array_agg(balance ORDER BY tx_dt DESC, id DESC))[1] AS closing_balance,
                   count(*) AS transactions,
                   count(*) FILTER (WHERE category IS NULL) AS unknown_type_rows
            FROM rows GROUP BY member_id, month
        )
        SELECT m.corp_num, m.name AS member_name, s.month, s.opening_balance, s.deposits, s.bonus_credits,
               s.usage_points, s.refunds, s.adjustments, s.closing_balance, s.transactions, s.unknown_type_rows,
               (SELECT count(*) FROM discrepancies d WHERE d.member_id = s.member_id AND d.status = 'open')
                   AS open_discrepancies
        FROM months s JOIN members m ON m.id = s.member_id
        """,
        "One line per member and Korean month: opening balance + deposits + bonus - usage - refunds "
        "+ adjustments = closing balance.",
        {
            "opening_balance": "balance before the month's first transaction",
            "deposits": "points credited by completed deposits (charge)",
            "bonus_credits": "bonus points credited (not refundable)",
            "usage_points": "points used by services",
            "refunds": "points debited by completed refunds",
            "adjustments": "signed sum of Popbill's manual adjustments",
            "closing_balance": "balance after the month's last transaction",
            "unknown_type_rows": "rows whose tx_type is not in tx_types (their points are in no column)",
            "open_discrepancies": "reconciliation findings still open for the member (all periods)",
        },
    ),
    "v_pending_items": (
        """
        SELECT 'payment' AS source, m.corp_num, m.name AS member_name, NULL::text AS code,
               p.reg_dt AT TIME ZONE 'Asia/Seoul' AS requested_at, p.settle_point AS points, p.settle_state AS raw_state,
               round((extract(epoch FROM now() - p.reg_dt) / 86400)::numeric, 1) AS age_days
        FROM payments p JOIN members m ON m.id = p.member_id
        JOIN state_codes c ON c.kind = 'settle' AND c.code = p.settle_state AND c.meaning = 'pending'
        UNION ALL
        SELECT 'refund', m.corp_num, m.name, NULL, r.req_dt AT TIME ZONE 'Asia/Seoul', r.request_point, r.state,
               round((extract(epoch FROM now() - r.req_dt) / 86400)::numeric, 1)
        FROM refunds r JOIN members m ON m.id = r.member_id
        JOIN state_codes c ON c.kind = 'refund' AND c.code = r.state AND c.meaning = 'pending'
        UNION ALL
        SELECT 'tracked ' || t.kind, m.corp_num, m.name, t.code, t.requested_at AT TIME ZONE 'Asia/Seoul', NULL,
               t.raw_state, round((extract(epoch FROM now() - t.requested_at) / 86400)::numeric, 1)
        FROM tracked_items t JOIN members m ON m.id = t.member_id WHERE t.state = 'pending'
        """,
        "Deposits and refunds not yet settled: in the ledger (a pending state in state_codes) and codes being polled.",
        {"requested_at": "Korean time of the request", "age_days": "days since the request"},
    ),
    "v_open_discrepancies": (
        """
        SELECT m.corp_num, m.name AS member_name, d.check_name, d.period, d.expected, d.actual, d.difference,
               d.description, d.status, d.first_seen_at AT TIME ZONE 'Asia/Seoul' AS first_seen_at,
               d.last_seen_at AT TIME ZONE 'Asia/Seoul' AS last_seen_at, d.evidence
        FROM discrepancies d JOIN members m ON m.id = d.member_id
        WHERE d.status IN ('open', 'acknowledged')
        """,
        "Reconciliation findings not yet resolved.",
        {"check_name": "which check found it", "difference": "actual - expected", "evidence": "the rows involved"},
    ),
}


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    op.create_table(
        "tx_types",
        sa.Column("code", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("direction", sa.SmallInteger(), nullable=False),
        sa.Column("category", sa.String(length=10), nullable=False),
        sa.Column("name_ko", sa.String(length=40), nullable=False),
        sa.Column("name_en", sa.String(length=40), nullable=False),
        sa.CheckConstraint(
            "category IN ('charge', 'bonus', 'use', 'refund', 'adjust')", name=op.f("ck_tx_types_category_known")
        ),
        sa.CheckConstraint("direction IN (-1, 1)", name=op.f("ck_tx_types_direction_sign")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tx_types")),
    )
    op.create_table(
        "discrepancies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("check_name", sa.String(length=30), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("expected", sa.Numeric(), nullable=True),
        sa.Column("actual", sa.Numeric(), nullable=True),
        sa.Column("difference", sa.Numeric(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=12), server_default="open", nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_discrepancies_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_discrepancies_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discrepancies")),
        sa.UniqueConstraint(
            "member_id",
            "check_name",
            "period",
            "fingerprint",
            name=op.f("uq_discrepancies_member_id_check_name_period_fingerprint"),
        ),
    )
    op.create_index("ix_discrepancies_status", "discrepancies", ["status"], unique=False)
    op.bulk_insert(
        sa.table(
            "tx_types",
            sa.column("code"),
            sa.column("direction"),
            sa.column("category"),
            sa.column("name_ko"),
            sa.column("name_en"),
        ),
        [dict(zip(("code", "direction", "category", "name_ko", "name_en"), row, strict=True)) for row in TX_TYPES],
    )
    op.create_table(
        "state_codes",
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("code", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("meaning", sa.String(length=10), nullable=False),
        sa.Column("name_ko", sa.String(length=40), nullable=False),
        sa.Column("name_en", sa.String(length=40), nullable=False),
        sa.CheckConstraint("kind IN ('settle', 'refund')", name=op.f("ck_state_codes_kind_known")),
        sa.CheckConstraint("meaning IN ('pending', 'done', 'cancelled')", name=op.f("ck_state_codes_meaning_known")),
        sa.PrimaryKeyConstraint("kind", "code", name=op.f("pk_state_codes")),
    )
    op.bulk_insert(
        sa.table(
            "state_codes",
            sa.column("kind"),
            sa.column("code"),
            sa.column("meaning"),
            sa.column("name_ko"),
            sa.column("name_en"),
        ),
        [dict(zip(("kind", "code", "meaning", "name_ko", "name_en"), row, strict=True)) for row in STATE_CODES],
    )
    for name, (body, comment, columns) in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
        op.execute(f"COMMENT ON VIEW {name} IS {_literal(comment)}")
        for column, text in columns.items():
            op.execute(f"COMMENT ON COLUMN {name}.{column} IS {_literal(text)}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_table("state_codes")
    op.drop_index("ix_discrepancies_status", table_name="discrepancies")
    op.drop_table("discrepancies")
    op.drop_table("tx_types")
