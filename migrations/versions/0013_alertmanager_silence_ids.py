"""alert silences remember the Alertmanager silence made with them

`ledger alerts mute` creates a silence in Alertmanager as well when one is configured, and
`ledger alerts unmute` expires it: the row keeps its id.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alert_silences", sa.Column("alertmanager_silence_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("alert_silences", "alertmanager_silence_id")
