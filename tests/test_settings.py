from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from ledger.popbill import AuthError, PopbillClient
from ledger.secret import Secret
from ledger.settings import SANDBOX_LINK_ID, Settings, SettingsError
from tests.conftest import MEMBER, client_settings

KEY = "c3VwZXItc2VjcmV0LWtleS1kby1ub3QtbGVhay0wMDA="


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.link_id == SANDBOX_LINK_ID and settings.is_test and settings.ip_restrict
    assert settings.resolved_api_url == "https://popbill-test.linkhub.co.kr"
    assert settings.resolved_auth_url == "https://auth.linkhub.co.kr"
    assert settings.database_url is None


@pytest.mark.parametrize(
    ("env", "api", "auth"),
    [
        ({"POPBILL_IS_TEST": "false"}, "https://popbill.linkhub.co.kr", "https://auth.linkhub.co.kr"),
        (
            {"POPBILL_USE_STATIC_IP": "1"},
            "https://static-popbill-test.linkhub.co.kr",
            "https://static-auth.linkhub.co.kr",
        ),
        (
            {"POPBILL_USE_GA_IP": "yes", "POPBILL_IS_TEST": "no"},
            "https://ga-popbill.linkhub.co.kr",
            "https://ga-auth.linkhub.co.kr",
        ),
        (
            {"POPBILL_API_URL": "http://127.0.0.1:9/", "LINKHUB_AUTH_URL": "http://127.0.0.1:8"},
            "http://127.0.0.1:9",
            "http://127.0.0.1:8",
        ),
    ],
)
def test_hosts_follow_the_flags(env, api, auth):
    settings = Settings.from_env(env)
    assert (settings.resolved_api_url, settings.resolved_auth_url) == (api, auth)


def test_environment_values_are_read():
    settings = Settings.from_env(
        {
            "POPBILL_LINK_ID": "ME",
            "POPBILL_SECRET_KEY": KEY,
            "POPBILL_IP_RESTRICT": "off",
            "POPBILL_CONNECT_TIMEOUT": "2.5",
            "POPBILL_READ_TIMEOUT": "30",
            "LEDGER_HOME": "/tmp/x",
        }
    )
    assert settings.link_id == "ME" and settings.secret_key.reveal() == KEY and not settings.ip_restrict
    assert settings.connect_timeout == 2.5 and settings.read_timeout == 30
    assert settings.ledger_home == Path("/tmp/x")


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"POPBILL_IS_TEST": "maybe"}, "POPBILL_IS_TEST"),
        ({"POPBILL_READ_TIMEOUT": "soon"}, "POPBILL_READ_TIMEOUT"),
        ({"POPBILL_CONNECT_TIMEOUT": "0"}, "POPBILL_CONNECT_TIMEOUT"),
    ],
)
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_secret_never_in_repr_str_or_pickle():
    settings = Settings.from_env({"POPBILL_SECRET_KEY": KEY, "LEDGER_DATABASE_URL": "postgresql://u:pw-123@h/db"})
    for text in (repr(settings), str(settings), f"{settings.secret_key}", repr(settings.database_url)):
        assert KEY not in text and "pw-123" not in text
    with pytest.raises(TypeError):
        pickle.dumps(Secret(KEY))


def test_secret_and_tokens_never_reach_logs_or_errors(simulator, caplog):
    caplog.set_level(logging.DEBUG)
    with PopbillClient(client_settings(simulator)) as client:
        client.get_balance(MEMBER)
        token = client.requestor.tokens.get(MEMBER).session_token.reveal()
        assert token not in repr(client.requestor.tokens.get(MEMBER))
        bad = client_settings(simulator, secret_key=Secret(KEY))
        with PopbillClient(bad) as wrong, pytest.raises(AuthError) as caught:
            wrong.get_balance(MEMBER)
    texts = [caplog.text, str(caught.value), repr(caught.value), repr(client), caught.value.body or ""]
    for text in texts:
        assert KEY not in text and simulator._secret.reveal() not in text and token not in text


def test_the_readme_settings_tables_are_the_generated_ones():
    from ledger.settings_table import block, readme_block

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    current = readme_block(readme)
    assert current is not None, "README.md lost its settings-table markers"
    assert current == block(), "README settings tables differ from ledger/settings.py: python -m ledger.settings_table --write"


def test_every_setting_is_declared_once_with_a_variable_and_a_meaning():
    from ledger.settings import GROUPS, declarations

    names = [declared.env for _, declared in declarations()]
    assert len(names) == len(set(names)), "a variable read into two fields"
    assert all(declared.group in GROUPS and declared.doc for _, declared in declarations())
    assert all(name.startswith(("LEDGER_", "POPBILL_", "LINKHUB_")) for name in names)


@pytest.mark.parametrize(
    "spec", ["at two every night please", "61 2 * * *", "0 25 * * *", "0 2 32 * *", "0 2 * 13 *", "0 2 * * eight"]
)
def test_a_crontab_celery_would_refuse_is_refused_when_loaded(spec):
    with pytest.raises(SettingsError, match="LEDGER_SCHEDULE_RECONCILE"):
        Settings.from_env({"LEDGER_SCHEDULE_RECONCILE": spec})


@pytest.mark.parametrize("spec", ["30 3 * * *", "*/15 1-5 * * mon-fri", "off", "600s", "2h"])
def test_crontabs_and_intervals_celery_accepts_are_kept(spec):
    assert Settings.from_env({"LEDGER_SCHEDULE_RECONCILE": spec}).schedule_reconcile == spec
