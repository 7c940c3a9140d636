"""Retention: the rows that grow with every run, check and tick are pruned by policy, in small
batches beside the sync; what accountants and reconciliation read is never pruned."""
