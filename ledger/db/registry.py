"""Imports every domain's models so that Base.metadata is complete (Alembic, tests)."""

from ledger.alerts import models as alerts_models  # noqa: F401
from ledger.balances import models as balances_models  # noqa: F401
from ledger.closing import models as closing_models  # noqa: F401
from ledger.db.base import Base
from ledger.health import models as health_models  # noqa: F401
from ledger.history import models as history_models  # noqa: F401
from ledger.members import models as members_models  # noqa: F401
from ledger.pending import models as pending_models  # noqa: F401
from ledger.reconcile import models as reconcile_models  # noqa: F401
from ledger.retention import models as retention_models  # noqa: F401
from ledger.scheduling import models as scheduling_models  # noqa: F401
from ledger.sync import models as sync_models  # noqa: F401

metadata = Base.metadata
