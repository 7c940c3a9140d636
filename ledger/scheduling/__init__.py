"""Celery beat's schedule, and the slot claims that make a second beat harmless."""
