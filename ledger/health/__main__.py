"""`python -m ledger.health [worker|beat|all] [--node NAME]`: the health check with nothing but
the settings, psycopg and kombu loaded (what docker-compose runs every minute)."""

from ledger.health.probe import main

main()
