"""Linkhub signing and tokens, checked by the simulator over real HTTP."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading

import pytest
import requests

from ledger.popbill import AuthError, PopbillClient, auth
from ledger.secret import Secret
from ledger.simulator import errors as sim_errors
from tests.conftest import MEMBER, client_settings


def signed_token_request(sim, *, secret: Secret, date: str, forwarded: str | None = None):
    path = "/POPBILL_TEST/Token"
    body = auth.token_request_body(MEMBER, ["member"])
    signature = auth.sign(secret, auth.signing_message(body, date, forwarded, path))
    headers = {"x-lh-date": date, "x-lh-version": "2.0", "Authorization": f"LINKHUB {sim.link_id} {signature}"}
    if forwarded:
        headers["x-lh-forwarded"] = forwarded
    return requests.post(sim.url + path, data=body, headers=headers, timeout=5)


def test_correct_signature_gets_a_token(simulator):
    answer = signed_token_request(simulator, secret=simulator._secret, date=auth.utc_stamp())
    assert answer.status_code == 200
    token = answer.json()
    assert token["serviceID"] == "POPBILL_TEST"
    # The SDK compares expiration[:-5] with its own clock: the milliseconds and Z must be there.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", token["expiration"])
    assert auth.parse_expiration(token["expiration"]) > dt.datetime.now(dt.UTC)


def test_forwarded_header_is_part_of_the_signature(simulator):
    ok = signed_token_request(simulator, secret=simulator._secret, date=auth.utc_stamp(), forwarded="*")
    assert ok.status_code == 200


def test_wrong_key_is_refused(simulator):
    wrong = Secret("d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMDA=")
    answer = signed_token_request(simulator, secret=wrong, date=auth.utc_stamp())
    assert answer.status_code == 401 and answer.json()["code"] == sim_errors.BAD_SIGNATURE


def test_stale_date_is_refused(simulator):
    stale = auth.utc_stamp(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))
    answer = signed_token_request(simulator, secret=simulator._secret, date=stale)
    assert answer.status_code == 401 and answer.json()["code"] == sim_errors.STALE_DATE


def test_client_with_wrong_key_raises_auth_error_naming_the_code(simulator):
    settings = dataclasses.replace(
        client_settings(simulator), secret_key=Secret("d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMDA=")
    )
    with PopbillClient(settings) as client, pytest.raises(AuthError) as caught:
        client.get_balance(MEMBER)
    assert caught.value.code == sim_errors.BAD_SIGNATURE
    assert caught.value.status == 401


def test_client_with_wrong_link_id_is_refused(simulator):
    settings = dataclasses.replace(client_settings(simulator), link_id="SOMEONE_ELSE")
    with PopbillClient(settings) as client, pytest.raises(AuthError) as caught:
        client.get_balance(MEMBER)
    assert caught.value.code == sim_errors.BAD_LINK_ID


def test_ip_restriction_off_sends_forwarded_header(simulator):
    with PopbillClient(client_settings(simulator, ip_restrict=False)) as client:
        assert client.get_balance(MEMBER) == simulator.world.balance(MEMBER)


def test_token_is_cached_per_member(client, simulator):
    client.get_balance(MEMBER)
    client.get_refundable_balance(MEMBER)
    client.get_balance("2208112345")
    assert len(simulator.requests("/POPBILL_TEST/Token")) == 2


def test_token_expired_on_the_server_is_renewed_once_transparently(client, simulator):
    client.get_balance(MEMBER)
    simulator.expire_tokens()
    assert client.get_use_history_url(MEMBER)  # API host
    simulator.expire_tokens()
    assert client.get_balance(MEMBER) == simulator.world.balance(MEMBER)  # auth host
    assert len(simulator.requests("/POPBILL_TEST/Token")) == 3
    refused = [r for r in simulator.requests() if r.status == 401]
    assert len(refused) == 2


def test_token_renewed_before_expiry(simulator):
    with PopbillClient(client_settings(simulator)) as client:
        token = client.requestor.tokens.get(MEMBER)
        near_expiry = dataclasses.replace(
            token,
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
            issued_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        )
        client.requestor.tokens._tokens[MEMBER] = near_expiry
        client.get_balance(MEMBER)
        assert client.requestor.tokens.get(MEMBER) is not near_expiry
    assert len(simulator.requests("/POPBILL_TEST/Token")) == 2


def test_persistent_auth_failure_is_not_retried_forever(client, simulator):
    simulator.inject("expired_token", path="/POPBILL_TEST/Point", count=5)
    with pytest.raises(AuthError):
        client.get_balance(MEMBER)
    assert len(simulator.requests("/POPBILL_TEST/Point")) == 2  # the call, and one renewal


def test_concurrent_threads_share_one_token(simulator):
    with PopbillClient(client_settings(simulator)) as client:
        errors = []

        def work():
            try:
                client.get_balance(MEMBER)
            except Exception as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
    assert len(simulator.requests("/POPBILL_TEST/Token")) == 1


def test_production_flag_uses_popbill_service_id(simulator):
    with PopbillClient(client_settings(simulator, is_test=False)) as client:
        client.get_balance(MEMBER)
    assert simulator.requests("/POPBILL/Token") and not simulator.requests("/POPBILL_TEST/Token")
