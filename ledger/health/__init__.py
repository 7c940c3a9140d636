"""Heartbeats, the health check, and the watchdog that raises an alert when beat or the nightly sync stops."""
