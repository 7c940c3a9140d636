"""Reconciliation: the ledger must add up to what Popbill reports; every gap is explained."""
