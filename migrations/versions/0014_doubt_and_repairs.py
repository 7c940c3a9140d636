"""doubt stays doubt: doubtful polls of tracked items, the twin lookup, and repair windows

- tracked_items.doubtful_polls / last_doubt: answers that were not clearly a state, counted
  until a clear one comes (ledger.pending.service);
- an index for the twin check of money requests (member, kind, digest, within a window);
- sync_repairs: windows the next sync fetches again where reconciliation found the ledger
  does not add up (ledger.reconcile.repair, ledger.sync.repair).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tracked_items", sa.Column("doubtful_polls", sa.Integer(), server_default="0", nullable=False))
    op.add_column("tracked_items", sa.Column("last_doubt", sa.Text(), nullable=True))
    op.create_index(
        "ix_tracked_items_member_id_kind_form_digest_requested_at",
        "tracked_items",
        ["member_id", "kind", "form_digest", "requested_at"],
    )
    op.create_table(
        "sync_repairs",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=True),
        sa.Column("window_end", sa.Date(), nullable=True),
        sa.Column("check_name", sa.String(length=30), nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("fetch_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetch_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("found", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("outcome", sa.String(length=12), nullable=True),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('payments', 'usage', 'refunds')", name=op.f("ck_sync_repairs_kind_known")),
        sa.CheckConstraint("outcome IN ('repaired', 'unrepaired')", name=op.f("ck_sync_repairs_outcome_known")),
        sa.CheckConstraint("window_start <= window_end", name=op.f("ck_sync_repairs_window_ordered")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_sync_repairs_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_repairs")),
    )
    op.create_index(
        "ix_sync_repairs_member_id_kind_due",
        "sync_repairs",
        ["member_id", "kind"],
        postgresql_where=sa.text("fetched_at IS NULL"),
    )
    op.create_index(
        "ix_sync_repairs_member_id_check_name_fingerprint", "sync_repairs", ["member_id", "check_name", "fingerprint"]
    )


def downgrade() -> None:
    op.drop_index("ix_sync_repairs_member_id_check_name_fingerprint", table_name="sync_repairs")
    op.drop_index("ix_sync_repairs_member_id_kind_due", table_name="sync_repairs")
    op.drop_table("sync_repairs")
    op.drop_index("ix_tracked_items_member_id_kind_form_digest_requested_at", table_name="tracked_items")
    op.drop_column("tracked_items", "last_doubt")
    op.drop_column("tracked_items", "doubtful_polls")
