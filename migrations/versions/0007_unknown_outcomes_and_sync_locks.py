"""money requests with unknown outcomes, and sync locks a reader cannot take

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OLD_STATES = "state IN ('pending', 'done', 'cancelled', 'invalid')"
_NEW_STATES = "state IN ('pending', 'done', 'cancelled', 'invalid', 'sending', 'unknown', 'not_found', 'refused')"


def upgrade() -> None:
    op.alter_column("tracked_items", "code", existing_type=sa.String(length=40), nullable=True)
    op.add_column("tracked_items", sa.Column("amount", sa.Numeric(), nullable=True))
    op.add_column("tracked_items", sa.Column("counterparty", sa.String(length=100), nullable=True))
    op.add_column("tracked_items", sa.Column("form_digest", sa.String(length=64), nullable=True))
    op.add_column("tracked_items", sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tracked_items", sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tracked_items", sa.Column("error", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_tracked_items_state_known"), "tracked_items", type_="check")
    op.create_check_constraint(op.f("ck_tracked_items_state_known"), "tracked_items", _NEW_STATES)
    op.create_table(
        "sync_locks",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.CheckConstraint("kind IN ('payments', 'usage', 'refunds')", name=op.f("ck_sync_locks_kind_known")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_sync_locks_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("member_id", "kind", name=op.f("pk_sync_locks")),
    )


def downgrade() -> None:
    op.drop_table("sync_locks")
    # Requests whose code was never learnt cannot live in the old table.
    op.execute(
        "DELETE FROM tracked_items WHERE code IS NULL OR state IN ('sending', 'unknown', 'not_found', 'refused')"
    )
    op.drop_constraint(op.f("ck_tracked_items_state_known"), "tracked_items", type_="check")
    op.create_check_constraint(op.f("ck_tracked_items_state_known"), "tracked_items", _OLD_STATES)
    for column in ("error", "registered_at", "answered_at", "form_digest", "counterparty", "amount"):
        op.drop_column("tracked_items", column)
    op.alter_column("tracked_items", "code", existing_type=sa.String(length=40), nullable=False)
