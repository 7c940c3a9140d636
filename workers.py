"""The Celery app as `celery -A workers` finds it from a checkout: a thin entry over
ledger.worker.app, which `ledger worker` and `ledger beat` use directly."""

from ledger.worker.app import make_app

app = make_app()
