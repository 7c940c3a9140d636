"""accountants' views a member and month filter can reach the (member_id, tx_dt) index through

0004's views group (and window with `lag`) over every usage row before a `corp_num = ... AND
month = ...` filter applies, so one member-month scanned all usages. Here each view walks the
member's months (from the first to the last month the member has usages, found through the
index), and computes each member-month in a LATERAL subquery on a `tx_dt` range. A filter on
corp_num lands on members, a filter on month on the month series, before any usage is read.
The balance chain's previous balance is `lag` within the month, and for the month's first row
the last balance before the month (one index probe): the same figures as 0004's window over all
rows. Columns, their order, types and comments are unchanged.

Revision ID: 0011
Revises: 0010
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_KST = "'Asia/Seoul'"

# Each member's Korean months, from its first usage's month to its last usage's (min and max
# come from the (member_id, tx_dt) index). `mm` has member_id, corp_num, member_name, month
# (date), month_start and month_end (timestamptz, end exclusive). Months with no usage are in
# the series; the aggregates below drop them.
MEMBER_MONTHS = f"""
        members m
        CROSS JOIN LATERAL (SELECT min(x.tx_dt) AS first_dt, max(x.tx_dt) AS last_dt
                            FROM usages x WHERE x.member_id = m.id) r
        CROSS JOIN LATERAL generate_series(date_trunc('month', r.first_dt AT TIME ZONE {_KST}),
                                           date_trunc('month', r.last_dt AT TIME ZONE {_KST}),
                                           interval '1 month') AS g(local_month)
        CROSS JOIN LATERAL (SELECT m.id AS member_id, g.local_month::date AS month,
                                   g.local_month AT TIME ZONE {_KST} AS month_start,
                                   (g.local_month + interval '1 month') AT TIME ZONE {_KST} AS month_end) mm
"""

SERVICE = "CASE WHEN coalesce({code}, 0) <> 0 THEN coalesce(i.name_ko, '알 수 없는 서비스 (' || {code} || ')') END"


def _signed(chained: str, extra: str = "") -> str:
    """v_usage_signed's columns (after `extra`) for the rows of `chained`: usage rows with their
    previous_balance (the balance of the member's row before, in tx_dt, id order)."""
    return f"""
        (WITH chained AS ({chained}), signed AS (
            SELECT {extra} c.member_id, c.id, c.tx_dt, c.item_code, c.tx_type, t.category, t.direction, c.tx_point,
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
        FROM signed s)
        """


def _probed(source: str, extra: str = "") -> str:
    """The usages `u` of `source` with their previous balance, one probe of the (member_id, tx_dt)
    index each. Flat (no window, no grouping): filters on the source's columns apply to its scan,
    and only the rows they keep are probed."""
    return f"""
        SELECT {extra} u.*, before.balance AS previous_balance
        FROM {source}
        LEFT JOIN LATERAL (SELECT p.balance FROM usages p
                           WHERE p.member_id = u.member_id AND (p.tx_dt, p.id) < (u.tx_dt, u.id)
                           ORDER BY p.tx_dt DESC, p.id DESC LIMIT 1) before ON true
        """


# One member-month's usage rows (of `mm`) with their previous balance: `lag` within the month,
# and for the month's first row the last balance before the month.
IN_MONTH = """
        SELECT u.*, CASE WHEN row_number() OVER w = 1 THEN before.balance ELSE lag(u.balance) OVER w END
                        AS previous_balance
        FROM usages u
        LEFT JOIN LATERAL (SELECT p.balance FROM usages p WHERE p.member_id = mm.member_id
                           AND p.tx_dt < mm.month_start ORDER BY p.tx_dt DESC, p.id DESC LIMIT 1) before ON true
        WHERE u.member_id = mm.member_id AND u.tx_dt >= mm.month_start AND u.tx_dt < mm.month_end
        WINDOW w AS (ORDER BY u.tx_dt, u.id)
        """
SIGNED_ROWS = _signed(IN_MONTH)


BODIES = {
    "v_usage_signed": f"SELECT * FROM {_signed(_probed('usages u'))} signed_usages",
    # Members come first in the join, so a corp_num filter reaches usages by member_id (the
    # planner does not move a join to members below v_usage_signed's lateral probe).
    "v_usage_daily": f"""
        SELECT u.corp_num, u.member_name, (u.tx_dt AT TIME ZONE {_KST})::date AS day,
               u.item_code, u.tx_type, u.category,
               count(*) AS transactions, sum(u.magnitude) AS points,
               {SERVICE.format(code="u.item_code")} AS service, sum(u.points) AS signed_points
        FROM {
        _signed(
            _probed("members m JOIN usages u ON u.member_id = m.id", "m.corp_num, m.name AS member_name,"),
            "c.corp_num, c.member_name,",
        )
    } u
        LEFT JOIN item_codes i ON i.code = u.item_code
        GROUP BY u.corp_num, u.member_name, (u.tx_dt AT TIME ZONE {_KST})::date, u.item_code, u.tx_type, u.category,
                 i.name_ko
        """,
    "v_monthly_usage_by_service": f"""
        SELECT m.corp_num, m.name AS member_name, mm.month, s.item_code, s.transactions, s.points,
               {SERVICE.format(code="s.item_code")} AS service
        FROM {MEMBER_MONTHS}
        CROSS JOIN LATERAL (
            SELECT u.item_code, count(*) AS transactions, sum(abs(u.tx_point)) AS points
            FROM usages u JOIN tx_types t ON t.code = u.tx_type AND t.category = 'use'
            WHERE u.member_id = mm.member_id AND u.tx_dt >= mm.month_start AND u.tx_dt < mm.month_end
            GROUP BY u.item_code
        ) s
        LEFT JOIN item_codes i ON i.code = s.item_code
        """,
    "v_monthly_statements": f"""
        SELECT m.corp_num, m.name AS member_name, mm.month, s.opening_balance, s.deposits, s.bonus_credits,
               s.usage_points, s.refunds, s.adjustments, s.closing_balance, s.transactions, s.unknown_type_rows,
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
            FROM {SIGNED_ROWS} u
            HAVING count(*) > 0
        ) s
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(won) FILTER (WHERE status = 'settled'), 0) AS deposits_won,
                   coalesce(sum(won) FILTER (WHERE status = 'pending'), 0) AS pending_deposits_won,
                   coalesce(sum(won) FILTER (WHERE status = 'cancelled'), 0) AS cancelled_deposits_won
            FROM v_deposits v WHERE v.corp_num = m.corp_num AND v.month = mm.month
        ) w
        """,
}

# Views that read others are dropped first and recreated after (0004's order).
DEPENDENT_ORDER = [
    "v_usage_signed",
    "v_usage_daily",
    "v_monthly_usage_by_service",
    "v_deposits",
    "v_monthly_statements",
]


def _views_of_0004() -> dict:
    path = Path(__file__).with_name("0004_item_codes_month_closes_and_money_views.py")
    spec = importlib.util.spec_from_file_location("migration_0004", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _recreate(views: dict, create) -> None:
    for name in reversed(DEPENDENT_ORDER):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    create(views)


def upgrade() -> None:
    previous = _views_of_0004()
    # Same comments as 0004's (view and columns), new bodies; v_deposits is unchanged.
    views = {name: (BODIES.get(name, previous.VIEWS[name][0]), *previous.VIEWS[name][1:]) for name in DEPENDENT_ORDER}
    _recreate(views, previous._create_views)


def downgrade() -> None:
    previous = _views_of_0004()
    _recreate({name: previous.VIEWS[name] for name in DEPENDENT_ORDER}, previous._create_views)
