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


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"LEDGER_ALERTMANAGER_URL": "am:9093"}, "LEDGER_ALERTMANAGER_URL"),
        ({"LEDGER_LOG_FORMAT": "xml"}, "LEDGER_LOG_FORMAT"),
        ({"LEDGER_LOG_LEVEL": "LOUD"}, "LEDGER_LOG_LEVEL"),
        ({"LEDGER_HEALTH_SYNC_DEADLINE": "25:00"}, "LEDGER_HEALTH_SYNC_DEADLINE"),
        ({"LEDGER_WORKER_METRICS_PORT": "70000"}, "LEDGER_WORKER_METRICS_PORT"),
        ({"LEDGER_METRICS_PER_MEMBER": "maybe"}, "LEDGER_METRICS_PER_MEMBER"),
    ],
)
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)
