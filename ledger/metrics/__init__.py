"""Prometheus metrics: the ledger's state read from PostgreSQL at scrape time (`ledger metrics
serve`), and the worker's own process metrics (Popbill calls, retries, rows, task durations)."""
