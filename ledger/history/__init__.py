"""The three point histories as tables: payments, usages, refunds, and their state changes."""
