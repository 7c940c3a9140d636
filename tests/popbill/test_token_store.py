"""Tokens kept on disk between processes (POPBILL_TOKEN_CACHE): a second client asks Linkhub
for no token while the first one's is valid; an expired or refused one is renewed and
replaced; the file is its owner's alone, one open to others is never used; a broken file
costs a warning, never a call; a token never reaches a log."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat

import pytest

from ledger.popbill import PopbillClient
from ledger.simulator import Simulator
from tests.conftest import client_settings, small_config

CORP = "1234567890"
TOKEN_PATH = "/POPBILL_TEST/Token"


@pytest.fixture
def sim():
    with Simulator(small_config(history_days=2)) as simulator:
        yield simulator


def client(sim, path) -> PopbillClient:
    return PopbillClient(dataclasses.replace(client_settings(sim), token_cache=str(path)))


def tokens_issued(sim) -> int:
    return len(sim.requests(TOKEN_PATH))


def test_a_second_process_uses_the_first_ones_token_until_it_is_refused(sim, tmp_path):
    path = tmp_path / "cache" / "tokens.sqlite3"
    with client(sim, path) as first:
        first.get_balance(CORP)
    assert tokens_issued(sim) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    with client(sim, path) as second:  # another process: nothing in its memory
        second.get_balance(CORP)
        second.get_balance("2208112345")  # another member: its own token
    assert tokens_issued(sim) == 2

    sim.expire_tokens()  # Linkhub refuses the kept token: renewed once, and kept in its place
    with client(sim, path) as third:
        third.get_balance(CORP)
    assert tokens_issued(sim) == 3
    with client(sim, path) as fourth:
        fourth.get_balance(CORP)
    assert tokens_issued(sim) == 3


def test_a_token_kept_for_another_host_or_partner_is_never_offered(sim, tmp_path):
    path = tmp_path / "tokens.sqlite3"
    with client(sim, path) as first:
        first.get_balance(CORP)
    other_partner = dataclasses.replace(client_settings(sim), token_cache=str(path), link_id="OTHER_PARTNER")
    with Simulator(small_config(history_days=2)) as other_host:
        with client(other_host, path) as elsewhere:
            elsewhere.get_balance(CORP)
        assert tokens_issued(other_host) == 1
    with PopbillClient(other_partner) as partner:
        assert partner.requestor.token_store.load(CORP) is None


@pytest.mark.parametrize("damage", ["file-open-to-others", "folder-open-to-others", "not-a-database"])
def test_a_file_it_cannot_trust_or_use_costs_a_warning_never_a_call(sim, tmp_path, caplog, damage):
    folder = tmp_path / "cache"
    folder.mkdir()
    path = folder / "tokens.sqlite3"
    if damage == "not-a-database":
        path.write_bytes(b"not sqlite " * 100)
        os.chmod(path, 0o600)
    else:
        with client(sim, path) as first:
            first.get_balance(CORP)
        os.chmod(*((path, 0o644) if damage == "file-open-to-others" else (folder, 0o777)))
    issued = tokens_issued(sim)
    with caplog.at_level(logging.WARNING), client(sim, path) as c:
        assert c.get_balance(CORP) is not None
        c.get_balance(CORP)
    assert tokens_issued(sim) == issued + 1  # asked Linkhub once, then kept it in memory
    assert "kept in memory only" in caplog.text


def test_a_kept_token_never_reaches_a_log_or_a_repr(sim, tmp_path, caplog):
    path = tmp_path / "tokens.sqlite3"
    with caplog.at_level(logging.DEBUG), client(sim, path) as c:
        c.get_balance(CORP)
        token = c.requestor.tokens.get(CORP).session_token.reveal()
        shown = repr(c.requestor.token_store) + repr(c.requestor.token_store.load(CORP)) + repr(c)
    assert token and token not in caplog.text and token not in shown
