"""Balance checks, alert rules with Alertmanager-like semantics, and the notification outbox."""
