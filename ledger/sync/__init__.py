"""Incremental, idempotent paging of the three histories into the ledger."""
