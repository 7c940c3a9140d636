"""sync runs can be interrupted (Ctrl-C, SIGTERM)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OLD = "status IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned')"
NEW = "status IN ('running', 'succeeded', 'failed', 'skipped', 'abandoned', 'interrupted')"


def upgrade() -> None:
    op.alter_column("sync_runs", "status", type_=sa.String(length=12), existing_type=sa.String(length=10))
    op.drop_constraint(op.f("ck_sync_runs_status_known"), "sync_runs", type_="check")
    op.create_check_constraint(op.f("ck_sync_runs_status_known"), "sync_runs", NEW)


def downgrade() -> None:
    # An interrupted run is, to the old schema, one whose process stopped.
    op.execute("UPDATE sync_runs SET status = 'abandoned' WHERE status = 'interrupted'")
    op.drop_constraint(op.f("ck_sync_runs_status_known"), "sync_runs", type_="check")
    op.create_check_constraint(op.f("ck_sync_runs_status_known"), "sync_runs", OLD)
    op.alter_column("sync_runs", "status", type_=sa.String(length=10), existing_type=sa.String(length=12))
