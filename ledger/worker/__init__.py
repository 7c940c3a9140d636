"""The Celery app (app.py), the options it gives the broker (broker.py)."""
