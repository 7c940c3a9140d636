"""ledger tables

Revision ID: 0001
Revises:
Create Date: 2026-11-25 20:39:47.851871
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("corp_num", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.String(length=50), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("low_balance_threshold", sa.Numeric(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("corp_num ~ '^[0-9]{10}$'", name=op.f("ck_members_corp_num_ten_digits")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint("corp_num", name=op.f("uq_members_corp_num")),
    )
    op.create_table(
        "balance_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=10), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("corp_num", sa.String(length=10), nullable=False),
        sa.Column("balance", sa.Numeric(), nullable=False),
        sa.Column("refundable_balance", sa.Numeric(), nullable=True),
        sa.Column("taken_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(subject = 'member') = (member_id IS NOT NULL)",
            name=op.f("ck_balance_snapshots_member_subject_has_member"),
        ),
        sa.CheckConstraint("subject IN ('member', 'partner')", name=op.f("ck_balance_snapshots_subject_known")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_balance_snapshots_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_balance_snapshots")),
    )
    op.create_index(
        "ix_balance_snapshots_member_id_taken_at", "balance_snapshots", ["member_id", "taken_at"], unique=False
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("row_key", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("occurrence", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("reg_dt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state_dt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settle_state", sa.Integer(), nullable=True),
        sa.Column("product_type", sa.String(), nullable=True),
        sa.Column("product_name", sa.String(), nullable=True),
        sa.Column("settle_type", sa.String(), nullable=True),
        sa.Column("settler_name", sa.String(), nullable=True),
        sa.Column("settler_email", sa.String(), nullable=True),
        sa.Column("settle_cost", sa.Numeric(), nullable=True),
        sa.Column("settle_point", sa.Numeric(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_payments_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "member_id", "row_key", "occurrence", name=op.f("uq_payments_member_id_row_key_occurrence")
        ),
    )
    op.create_index("ix_payments_member_id_reg_dt", "payments", ["member_id", "reg_dt"], unique=False)
    op.create_table(
        "refunds",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("row_key", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("occurrence", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("req_dt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.Integer(), nullable=True),
        sa.Column("request_point", sa.Numeric(), nullable=True),
        sa.Column("account_bank", sa.String(), nullable=True),
        sa.Column("account_num", sa.String(), nullable=True),
        sa.Column("account_name", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_refunds_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("member_id", "row_key", "occurrence", name=op.f("uq_refunds_member_id_row_key_occurrence")),
    )
    op.create_index("ix_refunds_member_id_req_dt", "refunds", ["member_id", "req_dt"], unique=False)
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="running", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_start", sa.Date(), nullable=True),
        sa.Column("window_end", sa.Date(), nullable=True),
        sa.Column("pages", sa.Integer(), server_default="0", nullable=False),
        sa.Column("api_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_inserted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_updated", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_unchanged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('payments', 'usage', 'refunds')", name=op.f("ck_sync_runs_kind_known")),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned')",
            name=op.f("ck_sync_runs_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_sync_runs_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index(
        "ix_sync_runs_member_id_kind_started_at", "sync_runs", ["member_id", "kind", "started_at"], unique=False
    )
    op.create_table(
        "sync_states",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("high_water", sa.Date(), nullable=True),
        sa.Column("window_start", sa.Date(), nullable=True),
        sa.Column("window_end", sa.Date(), nullable=True),
        sa.Column("pages_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_full_pass_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('payments', 'usage', 'refunds')", name=op.f("ck_sync_states_kind_known")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_sync_states_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("member_id", "kind", name=op.f("pk_sync_states")),
    )
    op.create_table(
        "usages",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("row_key", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("occurrence", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("tx_dt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("item_code", sa.Integer(), nullable=True),
        sa.Column("tx_type", sa.Integer(), nullable=True),
        sa.Column("tx_point", sa.Numeric(), nullable=True),
        sa.Column("balance", sa.Numeric(), nullable=True),
        sa.Column("service_user_id", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("user_name", sa.String(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_usages_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usages")),
        sa.UniqueConstraint("member_id", "row_key", "occurrence", name=op.f("uq_usages_member_id_row_key_occurrence")),
    )
    op.create_index("ix_usages_member_id_tx_dt", "usages", ["member_id", "tx_dt"], unique=False)
    op.create_table(
        "state_changes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("payment_id", sa.BigInteger(), nullable=True),
        sa.Column("refund_id", sa.BigInteger(), nullable=True),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("old_value", sa.String(), nullable=True),
        sa.Column("new_value", sa.String(), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("(payment_id IS NULL) <> (refund_id IS NULL)", name=op.f("ck_state_changes_one_subject")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_state_changes_payment_id_payments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_state_changes_refund_id_refunds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_state_changes")),
    )
    op.create_index("ix_state_changes_payment_id", "state_changes", ["payment_id"], unique=False)
    op.create_index("ix_state_changes_refund_id", "state_changes", ["refund_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_state_changes_refund_id", table_name="state_changes")
    op.drop_index("ix_state_changes_payment_id", table_name="state_changes")
    op.drop_table("state_changes")
    op.drop_index("ix_usages_member_id_tx_dt", table_name="usages")
    op.drop_table("usages")
    op.drop_table("sync_states")
    op.drop_index("ix_sync_runs_member_id_kind_started_at", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_index("ix_refunds_member_id_req_dt", table_name="refunds")
    op.drop_table("refunds")
    op.drop_index("ix_payments_member_id_reg_dt", table_name="payments")
    op.drop_table("payments")
    op.drop_index("ix_balance_snapshots_member_id_taken_at", table_name="balance_snapshots")
    op.drop_table("balance_snapshots")
    op.drop_table("members")
