"""item codes, month closes, and views with won beside points and chain-derived signs

Revision ID: 0004
Revises: 0003
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Popbill's service codes, as the official SDKs request them as token scopes (the `_addScope`
# calls of popbill's *Service.py). Where the exact product behind a code is not documented
# (which 카카오톡 or 팩스 product), the family is named with the code rather than guessed.
ITEM_CODES = [
    (110, "전자세금계산서", "e-tax invoice"),
    (111, "홈택스 세금계산서 수집", "Hometax tax invoice collection"),
    (121, "전자명세서(거래명세서)", "e-statement (transaction statement)"),
    (122, "전자명세서(청구서)", "e-statement (bill)"),
    (123, "전자명세서(견적서)", "e-statement (quotation)"),
    (124, "전자명세서(발주서)", "e-statement (purchase order)"),
    (125, "전자명세서(입금표)", "e-statement (deposit slip)"),
    (126, "전자명세서(영수증)", "e-statement (receipt)"),
    (140, "현금영수증", "cash receipt"),
    (141, "홈택스 현금영수증 수집", "Hometax cash receipt collection"),
    (150, "문자 (SMS)", "text message (SMS)"),
    (151, "문자 (LMS)", "text message (LMS)"),
    (152, "문자 (MMS)", "text message (MMS)"),
    *[(code, f"카카오톡 ({code})", f"KakaoTalk ({code})") for code in range(153, 159)],
    (160, "팩스 (160)", "fax (160)"),
    (161, "팩스 (161)", "fax (161)"),
    (170, "휴폐업조회", "business closure lookup"),
    (171, "기업정보조회", "company information lookup"),
    (180, "계좌조회", "bank account inquiry"),
    (182, "예금주조회(성명)", "account holder lookup (name)"),
    (183, "예금주조회(실명)", "account holder lookup (real-name)"),
]

# Charges, refunds and adjustments carry item_code 0 (or none): no service, so no name.
SERVICE = "CASE WHEN coalesce({code}, 0) <> 0 THEN coalesce(i.name_ko, '알 수 없는 서비스 (' || {code} || ')') END"

VIEWS = {
    "v_usage_signed": (
        """
        WITH chained AS (
            SELECT u.*, lag(u.balance) OVER (PARTITION BY u.member_id ORDER BY u.tx_dt, u.id) AS previous_balance
            FROM usages u
        ), signed AS (
            SELECT c.member_id, c.id, c.tx_dt, c.item_code, c.tx_type, t.category, t.direction, c.tx_point,
                   abs(c.tx_point) AS magnitude, c.previous_balance, c.balance,
                   CASE WHEN c.previous_balance IS NULL OR c.tx_point = 0 THEN NULL
                        WHEN c.balance - c.previous_balance = abs(c.tx_point) THEN 1
                        WHEN c.previous_balance - c.balance = abs(c.tx_point) THEN -1 END AS chain_sign
            FROM chained c LEFT JOIN tx_types t ON t.code = c.tx_type
        )
        SELECT s.*,
               coalesce(s.chain_sign, s.direction, CASE WHEN s.tx_point < 0 THEN -1 END) * s.magnitude AS points,
               CASE WHEN s.chain_sign IS NOT NULL THEN 'chain' WHEN s.direction IS NOT NULL THEN 'tx_types'
                    WHEN s.tx_point < 0 THEN 'wire' END AS sign_source
        FROM signed s
        """,
        "Each usage row with its signed points. Whether txPoint arrives signed is not documented, so the "
        "sign comes from the balance chain (balance - previous balance) where it can tell, else from "
        "tx_types, else from a negative txPoint on the wire.",
        {
            "magnitude": "abs(txPoint), whatever sign convention the wire used",
            "chain_sign": "+1 or -1 as the balance chain shows it; NULL where the chain cannot tell",
            "points": "magnitude with its sign (NULL when nothing tells the sign)",
            "sign_source": "chain, tx_types or wire",
        },
    ),
    "v_usage_daily": (
        f"""
        SELECT m.corp_num, m.name AS member_name,
               (u.tx_dt AT TIME ZONE 'Asia/Seoul')::date AS day,
               u.item_code, u.tx_type, u.category,
               count(*) AS transactions, sum(u.magnitude) AS points,
               {SERVICE.format(code="u.item_code")} AS service, sum(u.points) AS signed_points
        FROM v_usage_signed u
        JOIN members m ON m.id = u.member_id
        LEFT JOIN item_codes i ON i.code = u.item_code
        GROUP BY m.corp_num, m.name, (u.tx_dt AT TIME ZONE 'Asia/Seoul')::date, u.item_code, u.tx_type, u.category,
                 i.name_ko
        """,
        "Point transactions per member, Korean day, service (item_code) and type.",
        {
            "day": "Korean calendar day of the transactions",
            "item_code": "Popbill service code (0 for charges, refunds and adjustments)",
            "category": "charge, bonus, use, refund or adjust (from tx_types)",
            "points": "sum of the magnitudes of txPoint (the category gives the direction)",
            "service": "the service's name from item_codes",
            "signed_points": "sum of the signed points (see v_usage_signed)",
        },
    ),
    "v_monthly_usage_by_service": (
        f"""
        SELECT m.corp_num, m.name AS member_name,
               date_trunc('month', u.tx_dt AT TIME ZONE 'Asia/Seoul')::date AS month,
               u.item_code, count(*) AS transactions, sum(abs(u.tx_point)) AS points,
               {SERVICE.format(code="u.item_code")} AS service
        FROM usages u
        JOIN members m ON m.id = u.member_id
        JOIN tx_types t ON t.code = u.tx_type AND t.category = 'use'
        LEFT JOIN item_codes i ON i.code = u.item_code
        GROUP BY m.corp_num, m.name, date_trunc('month', u.tx_dt AT TIME ZONE 'Asia/Seoul')::date, u.item_code,
                 i.name_ko
        """,
        "Points used per member, Korean month and service (item_code).",
        {
            "month": "first day of the Korean month",
            "points": "points used by that service in the month",
            "service": "the service's name from item_codes",
        },
    ),
    "v_deposits": (
        """
        SELECT m.corp_num, m.name AS member_name,
               date_trunc('month', (CASE WHEN c.meaning = 'pending' THEN p.reg_dt
                                         ELSE coalesce(p.state_dt, p.reg_dt) END) AT TIME ZONE 'Asia/Seoul')::date
                   AS month,
               p.reg_dt AT TIME ZONE 'Asia/Seoul' AS reg_dt, p.state_dt AT TIME ZONE 'Asia/Seoul' AS state_dt,
               CASE c.meaning WHEN 'done' THEN 'settled' WHEN 'pending' THEN 'pending'
                              WHEN 'cancelled' THEN 'cancelled' ELSE 'unknown' END AS status,
               p.settle_cost AS won, p.settle_point AS points, p.settle_type, p.settler_name, p.settle_state
        FROM payments p JOIN members m ON m.id = p.member_id
        LEFT JOIN state_codes c ON c.kind = 'settle' AND c.code = p.settle_state
        """,
        "Every deposit (충전) request with the won amount paid (settleCost) beside the points credited "
        "(settlePoint). Whether settleCost includes VAT is not documented; no VAT split is made.",
        {
            "month": "Korean month it belongs to: of the request while pending, of settlement or cancellation after",
            "status": "settled, pending, cancelled (from state_codes) or unknown",
            "won": "settleCost: the amount paid, in won",
            "points": "settlePoint: the points credited",
        },
    ),
    "v_monthly_statements": (
        """
        WITH months AS (
            SELECT member_id, date_trunc('month', tx_dt AT TIME ZONE 'Asia/Seoul')::date AS month,
                   (array_agg(balance - points ORDER BY tx_dt, id))[1] AS opening_balance,
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
            FROM v_usage_signed GROUP BY member_id, date_trunc('month', tx_dt AT TIME ZONE 'Asia/Seoul')::date
        ), money AS (
            SELECT corp_num, month,
                   coalesce(sum(won) FILTER (WHERE status = 'settled'), 0) AS deposits_won,
                   coalesce(sum(won) FILTER (WHERE status = 'pending'), 0) AS pending_deposits_won,
                   coalesce(sum(won) FILTER (WHERE status = 'cancelled'), 0) AS cancelled_deposits_won
            FROM v_deposits GROUP BY corp_num, month
        )
        SELECT m.corp_num, m.name AS member_name, s.month, s.opening_balance, s.deposits, s.bonus_credits,
               s.usage_points, s.refunds, s.adjustments, s.closing_balance, s.transactions, s.unknown_type_rows,
               (SELECT count(*) FROM discrepancies d WHERE d.member_id = s.member_id AND d.status = 'open')
                   AS open_discrepancies,
               s.unclassified_points, coalesce(w.deposits_won, 0) AS deposits_won,
               coalesce(w.pending_deposits_won, 0) AS pending_deposits_won,
               coalesce(w.cancelled_deposits_won, 0) AS cancelled_deposits_won, s.sign_disagreements,
               EXISTS (SELECT 1 FROM month_closes c WHERE c.member_id = s.member_id AND c.month = s.month
                       AND c.reopened_at IS NULL) AS closed
        FROM months s JOIN members m ON m.id = s.member_id
        LEFT JOIN money w ON w.corp_num = m.corp_num AND w.month = s.month
        """,
        "One line per member and Korean month: opening balance + deposits + bonus - usage - refunds "
        "+ adjustments + unclassified = closing balance, with the won paid beside the points.",
        {
            "opening_balance": "balance before the month's first transaction",
            "deposits": "points credited by completed deposits (charge)",
            "bonus_credits": "bonus points credited (not paid money, not refundable)",
            "usage_points": "points used by services",
            "refunds": "points debited by completed refunds",
            "adjustments": "signed sum of Popbill's manual adjustments",
            "closing_balance": "balance after the month's last transaction",
            "unknown_type_rows": "rows whose tx_type is not in tx_types",
            "open_discrepancies": "reconciliation findings still open for the member (all periods)",
            "unclassified_points": "signed points of rows whose tx_type is not in tx_types (sign from the chain)",
            "deposits_won": "won paid (settleCost) for deposits settled in the month",
            "pending_deposits_won": "won of deposits requested in the month and still pending",
            "cancelled_deposits_won": "won of deposits cancelled in the month",
            "sign_disagreements": "rows whose balance chain contradicts their tx_types direction",
            "closed": "the month is closed (ledger close); `ledger report statement` shows the frozen figures",
        },
    ),
}

# Views that read the ones above are dropped first and recreated after.
DEPENDENT_ORDER = [
    "v_usage_signed",
    "v_usage_daily",
    "v_monthly_usage_by_service",
    "v_deposits",
    "v_monthly_statements",
]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _create_views(views: dict) -> None:
    for name, (body, comment, columns) in views.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
        op.execute(f"COMMENT ON VIEW {name} IS {_literal(comment)}")
        for column, text in columns.items():
            op.execute(f"COMMENT ON COLUMN {name}.{column} IS {_literal(text)}")


def _previous_views() -> dict:
    path = Path(__file__).with_name("0003_reconciliation_and_accountants_views.py")
    spec = importlib.util.spec_from_file_location("migration_0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VIEWS


def upgrade() -> None:
    op.create_table(
        "item_codes",
        sa.Column("code", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name_ko", sa.String(length=60), nullable=False),
        sa.Column("name_en", sa.String(length=60), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_item_codes")),
    )
    op.bulk_insert(
        sa.table("item_codes", sa.column("code"), sa.column("name_ko"), sa.column("name_en")),
        [{"code": code, "name_ko": ko, "name_en": en} for code, ko, en in ITEM_CODES],
    )
    op.create_table(
        "month_closes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("figures", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("closed_by", sa.String(length=100), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("reopened_by", sa.String(length=100), nullable=True),
        sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopen_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(reopened_at IS NULL) = (reopen_reason IS NULL)", name=op.f("ck_month_closes_reopen_has_reason")
        ),
        sa.CheckConstraint("extract(day FROM month) = 1", name=op.f("ck_month_closes_month_first_day")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_month_closes_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_month_closes")),
    )
    op.create_index("uq_month_closes_member_id_month_in_force", "month_closes", ["member_id", "month"], unique=True,
                    postgresql_where=sa.text("reopened_at IS NULL"))  # fmt: skip
    for name in ("v_monthly_statements", "v_monthly_usage_by_service", "v_usage_daily"):
        op.execute(f"DROP VIEW {name}")
    _create_views({name: VIEWS[name] for name in DEPENDENT_ORDER})


def downgrade() -> None:
    for name in reversed(DEPENDENT_ORDER):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    previous = _previous_views()
    _create_views(
        {name: previous[name] for name in ("v_usage_daily", "v_monthly_usage_by_service", "v_monthly_statements")}
    )
    op.drop_index("uq_month_closes_member_id_month_in_force", table_name="month_closes")
    op.drop_table("month_closes")
    op.drop_table("item_codes")
