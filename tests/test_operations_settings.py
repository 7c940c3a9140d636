"""The operations settings: read, defaulted, and a bad value refused with the variable's name."""

from __future__ import annotations

import datetime as dt

import pytest

from ledger.settings import Settings, SettingsError


def test_operations_settings_are_read():
    settings = Settings.from_env({
        "LEDGER_ALERTMANAGER_URL": "http://am:9093/", "LEDGER_METRICS_PER_MEMBER": "false",
        "LEDGER_WORKER_METRICS_PORT": "9465", "LEDGER_LOG_FORMAT": "JSON", "LEDGER_LOG_LEVEL": "debug",
        "LEDGER_HEALTH_BEAT_MAX_AGE": "120", "LEDGER_HEALTH_SYNC_DEADLINE": "07:30",
        "LEDGER_WORKER_SOFT_SHUTDOWN_TIMEOUT": "5",
    })  # fmt: skip
    assert settings.alertmanager_url.reveal() == "http://am:9093" and "am:9093" not in repr(settings)
    assert not settings.metrics_per_member and settings.worker_metrics_port == 9465
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
    assert settings.health_beat_max_age == 120 and settings.health_sync_deadline == dt.time(7, 30)
    assert settings.worker_soft_shutdown_timeout == 5
    defaults = Settings.from_env({})
    assert defaults.alertmanager_url is None and defaults.worker_metrics_port is None and defaults.log_level is None
    assert Settings.from_env({"LEDGER_HEALTH_SYNC_DEADLINE": "off"}).health_sync_deadline is None


def test_alert_pipeline_settings_are_read():
    settings = Settings.from_env({
        "LEDGER_ALERTMANAGER_LEASE": "600", "LEDGER_ALERTMANAGER_REPOST": "30", "LEDGER_DEPLOYMENT": "prod-kr",
        "LEDGER_METRICS_SYNC_PER_KIND": "true", "LEDGER_METRICS_REFRESH": "120", "LEDGER_WORKER_NAME": "ledger-2@%h",
    })  # fmt: skip
    assert (settings.alertmanager_lease, settings.alertmanager_repost, settings.deployment) == (600, 30, "prod-kr")
    assert settings.metrics_sync_per_kind and settings.metrics_refresh == 120 and settings.worker_name == "ledger-2@%h"
    defaults = Settings.from_env({})
    assert (defaults.alertmanager_lease, defaults.alertmanager_repost, defaults.deployment) == (900, 60, "ledger")
    assert not defaults.metrics_sync_per_kind and defaults.metrics_refresh == 60 and defaults.worker_name is None


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"LEDGER_ALERTMANAGER_URL": "am:9093"}, "LEDGER_ALERTMANAGER_URL"),
        ({"LEDGER_LOG_FORMAT": "xml"}, "LEDGER_LOG_FORMAT"),
        ({"LEDGER_LOG_LEVEL": "LOUD"}, "LEDGER_LOG_LEVEL"),
        ({"LEDGER_HEALTH_SYNC_DEADLINE": "25:00"}, "LEDGER_HEALTH_SYNC_DEADLINE"),
        ({"LEDGER_WORKER_METRICS_PORT": "70000"}, "LEDGER_WORKER_METRICS_PORT"),
        ({"LEDGER_METRICS_PER_MEMBER": "maybe"}, "LEDGER_METRICS_PER_MEMBER"),
        ({"LEDGER_ALERTMANAGER_LEASE": "1"}, "LEDGER_ALERTMANAGER_LEASE"),
        ({"LEDGER_ALERTMANAGER_REPOST": "0"}, "LEDGER_ALERTMANAGER_REPOST"),
        ({"LEDGER_DEPLOYMENT": 'a"b'}, "LEDGER_DEPLOYMENT"),
        ({"LEDGER_METRICS_REFRESH": "0"}, "LEDGER_METRICS_REFRESH"),
        ({"LEDGER_WORKER_NAME": "no-at-sign"}, "LEDGER_WORKER_NAME"),
    ],
)
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_doubt_money_repair_and_security_settings():
    defaults = Settings.from_env({})
    assert (defaults.pending_doubt_limit, defaults.repair_windows, defaults.money_twin_window) == (3, 4, 600)
    assert defaults.money_max_won == 10_000_000 and defaults.reader_connection_limit == 10
    assert not (defaults.smtp_starttls or defaults.smtp_ssl or defaults.smtp_insecure_plaintext_login)
    assert Settings.from_env({"LEDGER_SMTP_USER": "me"}).smtp_starttls  # a user turns STARTTLS on
    assert not Settings.from_env({"LEDGER_SMTP_USER": "me", "LEDGER_SMTP_STARTTLS": "false"}).smtp_starttls
    read = Settings.from_env({"LEDGER_PENDING_DOUBT_LIMIT": "5", "LEDGER_REPAIR_WINDOWS": "0",
                              "LEDGER_MONEY_MAX_WON": "500000", "LEDGER_MONEY_TWIN_WINDOW": "60",
                              "LEDGER_READER_CONNECTION_LIMIT": "3", "LEDGER_SMTP_SSL": "true",
                              "LEDGER_SMTP_INSECURE_PLAINTEXT_LOGIN": "yes"})  # fmt: skip
    assert (read.pending_doubt_limit, read.repair_windows, read.money_max_won, read.money_twin_window) == (5, 0, 500000, 60)
    assert read.reader_connection_limit == 3 and read.smtp_ssl and read.smtp_insecure_plaintext_login


@pytest.mark.parametrize(
    ("name", "value"),
    [("LEDGER_PENDING_DOUBT_LIMIT", "0"), ("LEDGER_REPAIR_WINDOWS", "-1"), ("LEDGER_MONEY_MAX_WON", "10.5"),
     ("LEDGER_MONEY_MAX_WON", "0"), ("LEDGER_MONEY_MAX_WON", "1e30"), ("LEDGER_MONEY_TWIN_WINDOW", "-5"),
     ("LEDGER_READER_CONNECTION_LIMIT", "0"), ("LEDGER_SMTP_SSL", "maybe"),
     ("LEDGER_SMTP_INSECURE_PLAINTEXT_LOGIN", "sure")],
)  # fmt: skip
def test_bad_doubt_and_money_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
