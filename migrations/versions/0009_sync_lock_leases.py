"""sync lock leases: the session holding a sync lock, named in its row

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sync_locks", sa.Column("holder_pid", sa.Integer(), nullable=True))
    op.add_column("sync_locks", sa.Column("holder_started", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("sync_locks", "holder_started")
    op.drop_column("sync_locks", "holder_pid")
