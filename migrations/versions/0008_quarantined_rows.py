"""quarantined rows: history rows Popbill sent that failed the row checks

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 00:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantined_rows",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("fingerprint", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_chars", sa.Integer(), nullable=False),
        sa.Column("times_seen", sa.Integer(), server_default="1", nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('payments', 'usage', 'refunds')", name=op.f("ck_quarantined_rows_kind_known")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_quarantined_rows_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_rows")),
        sa.UniqueConstraint(
            "member_id", "kind", "fingerprint", name=op.f("uq_quarantined_rows_member_id_kind_fingerprint")
        ),
    )


def downgrade() -> None:
    op.drop_table("quarantined_rows")
