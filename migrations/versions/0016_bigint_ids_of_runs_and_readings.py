"""sync runs and balance readings get bigint ids

At 100,000 members a balance check every 30 minutes writes 4.8 million readings a day: an int4
id would run out in about fifteen months, whatever retention prunes (ids are not reused). Sync
runs write 300,000 a night. Both become bigint, as usages, payments and refunds already are.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = ("balance_snapshots", "sync_runs")


def upgrade() -> None:
    for table in TABLES:
        op.alter_column(table, "id", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)
        op.execute(f"ALTER SEQUENCE {table}_id_seq AS bigint")


def downgrade() -> None:
    # Refused by PostgreSQL when an id has already passed the int4 range, rather than losing it.
    for table in TABLES:
        op.execute(f"ALTER SEQUENCE {table}_id_seq AS integer")
        op.alter_column(table, "id", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
