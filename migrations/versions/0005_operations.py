"""operations: heartbeats, alert silences (replacing mutes), stable notification keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 00:22:37.322306
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=60), nullable=True),
        sa.Column("rule", sa.String(length=30), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_alert_silences_ends_after_start")),
        sa.CheckConstraint("subject IS NOT NULL OR rule IS NOT NULL", name=op.f("ck_alert_silences_matches_something")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_silences")),
    )
    op.create_index("ix_alert_silences_ends_at", "alert_silences", ["ends_at"], unique=False)
    # A mute was a silence of every rule of one subject.
    op.execute(
        "INSERT INTO alert_silences (subject, comment, created_by, starts_at, ends_at, created_at) "
        "SELECT subject, 'muted before silences existed', 'ledger', least(created_at, until - interval '1 second'), "
        "until, created_at FROM alert_mutes"
    )
    op.drop_table("alert_mutes")
    op.create_table(
        "heartbeats",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_heartbeats")),
    )
    op.add_column(
        "notifications", sa.Column("key", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False)
    )
    op.add_column("notifications", sa.Column("rule", sa.String(length=30), nullable=True))
    op.create_unique_constraint(op.f("uq_notifications_key"), "notifications", ["key"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_notifications_key"), "notifications", type_="unique")
    op.drop_column("notifications", "rule")
    op.drop_column("notifications", "key")
    op.drop_table("heartbeats")
    op.create_table(
        "alert_mutes",
        sa.Column("subject", sa.VARCHAR(length=60), nullable=False),
        sa.Column("until", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("created_at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_alert_mutes")),
    )
    # Only whole-subject silences can become mutes; the latest end wins.
    op.execute(
        "INSERT INTO alert_mutes (subject, until, created_at) SELECT subject, max(ends_at), min(created_at) "
        "FROM alert_silences WHERE subject IS NOT NULL AND rule IS NULL GROUP BY subject"
    )
    op.drop_index("ix_alert_silences_ends_at", table_name="alert_silences")
    op.drop_table("alert_silences")
