"""The client against a hostile server: answers are bounded in size, decoded size, time and
pages, whatever the server does. Assertions are on bytes and calls, never on memory or time."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from ledger.popbill import PagingError, PaymentForm, PopbillClient, PopbillError
from ledger.settings import Settings
from tests.conftest import MEMBER
from tests.hostile import CHUNK, GzipBomb, HostileServer, Huge, Redirect, Trickle, page, usage_row
from tests.waiting import wait_for

DAY = dt.date(2026, 11, 20)
MiB = 2**20


def hostile_client(server: HostileServer, **env: str) -> PopbillClient:
    """Settings through the environment, as an operator gives them."""
    base = {
        "POPBILL_API_URL": server.url, "LINKHUB_AUTH_URL": server.url, "POPBILL_RETRY_BACKOFF": "0.01",
        "POPBILL_RETRY_ATTEMPTS": "3", "POPBILL_READ_TIMEOUT": "2", "POPBILL_CONNECT_TIMEOUT": "2",
    }  # fmt: skip
    return PopbillClient(Settings.from_env({**base, **env}))


def use_history(client: PopbillClient):
    return client.get_use_history(MEMBER, DAY, DAY)


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_an_answer_over_the_size_limit_is_cut_there_and_not_retried(declared):
    size = 32 * MiB  # the measured case was 200 MB; past the socket buffers is what matters
    big_page = page([usage_row(1, DAY, userName="A" * size)])
    with HostileServer(lambda path, page_no: big_page if declared else Huge(size)) as server:
        with (
            hostile_client(server, POPBILL_MAX_RESPONSE_BYTES=str(MiB)) as client,
            pytest.raises(PopbillError) as caught,
        ):
            use_history(client)
        wait_for(lambda: server.answered == 1, what="the server to finish its answer")
        assert server.history_calls("/UseHistory") == [1]  # not retried: it would come back as large
        assert server.bytes_sent < size  # the client stopped reading; it never took the whole answer
    error = caught.value
    assert "over the limit" in str(error)
    assert error.received <= MiB + CHUNK  # what the client read before stopping
    if declared:
        assert error.received == 0  # refused on Content-Length alone


def test_a_redirect_is_not_followed():
    """A followed redirect would send the bearer token wherever it points."""
    with HostileServer(lambda path, page_no: page([usage_row(1, DAY)])) as elsewhere:
        with HostileServer(lambda path, page_no: Redirect(f"{elsewhere.url}{path}")) as server:
            with hostile_client(server) as client, pytest.raises(PopbillError) as caught:
                use_history(client)
            assert server.history_calls("/UseHistory")  # asked, and answered with the redirect
        assert elsewhere.history_calls("/UseHistory") == []
    assert "302" in str(caught.value)


def test_a_gzip_bomb_is_stopped_at_the_decoded_limit():
    size = 64 * MiB
    with HostileServer(lambda path, page_no: GzipBomb(size)) as server:
        with (
            hostile_client(server, POPBILL_MAX_DECODED_BYTES=str(MiB)) as client,
            pytest.raises(PopbillError) as caught,
        ):
            use_history(client)
        wait_for(lambda: server.answered == 1, what="the server to finish its answer")
        assert server.history_calls("/UseHistory") == [1]
        wire = server.bytes_sent
    error = caught.value
    assert "over the limit" in str(error) and "decoded" in str(error)
    assert error.decoded <= MiB + CHUNK  # inflated no further than the limit
    assert error.received <= wire < MiB  # the bomb itself is small


def test_a_page_inside_the_limits_is_read_whole():
    rows = [usage_row(n, DAY) for n in range(1000)]
    with HostileServer(lambda path, page_no: page(rows)) as server, hostile_client(server) as client:
        client.get_balance(MEMBER)  # the token first, so that the figures below are the page's alone
        before = client.stats.body_bytes
        result = use_history(client)
        assert [r.raw for r in result.items] == rows
        assert client.stats.body_bytes - before == len(json.dumps(page(rows).data).encode())


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_a_trickling_server_meets_the_call_deadline(in_headers):
    body = json.dumps(page([usage_row(1, DAY)]).data).encode()
    trickle = Trickle(body, interval=0.1, headers=in_headers)  # every byte well inside the read timeout
    with HostileServer(lambda path, page_no: trickle) as server:
        with hostile_client(server, POPBILL_CALL_DEADLINE="1.5") as client, pytest.raises(PopbillError) as caught:
            use_history(client)
        calls = server.history_calls("/UseHistory")
        sent = server.bytes_sent
    assert "deadline" in str(caught.value)
    assert sent < len(body)  # gave up before the answer was complete
    assert calls == [1]  # the deadline covers the whole call, retries included


def test_a_payment_request_cut_by_the_deadline_is_not_sent_again():
    answer = Trickle(json.dumps({"code": 1, "message": "OK", "settleCode": "202611200000001"}).encode(), 0.1)
    form = PaymentForm("담당자", "a@example.com", "010-1111-2222", "입금자", Decimal("22000"))
    with HostileServer(lambda path, page_no: answer) as server:
        with hostile_client(server, POPBILL_CALL_DEADLINE="1") as client, pytest.raises(PopbillError) as caught:
            client.payment_request(MEMBER, form)
        assert server.history_calls("/Payment") == [1]
    assert caught.value.sent is True


def test_an_endless_listing_is_refused_on_its_first_page():
    def endless(path, page_no):
        if page_no > 30:  # an old client would page on; stop it here rather than for ever
            raise ConnectionAbortedError
        rows = [usage_row(page_no * 1000 + n, DAY) for n in range(1000)]
        return page(rows, total=10**9, page_no=page_no)

    with HostileServer(endless) as server, hostile_client(server, POPBILL_MAX_PAGES="500") as client:
        with pytest.raises(PagingError) as caught:
            for _ in client.iter_use_history(MEMBER, DAY, DAY):
                pass
        assert server.history_calls("/UseHistory") == [1]
    assert "over the limit of 500 pages" in str(caught.value)


def test_pages_declaring_other_than_the_first_did_are_refused():
    def shifting(path, page_no):  # page 1 says 3 pages of 10; later pages say 30 pages of 1
        if page_no == 1:
            return page([usage_row(n, DAY) for n in range(10)], total=30, per_page=10)
        return page([usage_row(100 + page_no, DAY)], total=30, per_page=1, page_no=page_no)

    with HostileServer(shifting) as server, hostile_client(server) as client:
        with pytest.raises(PagingError) as caught:
            for _ in client.iter_use_history(MEMBER, DAY, DAY, per_page=10):
                pass
        assert server.history_calls("/UseHistory") == [1, 2]
    assert "page 1 declared" in str(caught.value)


@pytest.mark.parametrize("fields", [{"total": "lots"}, {"pageCount": [1]}, {"list": "rows"}])
def test_a_page_with_garbage_in_its_own_fields_is_a_clear_error(fields):
    garbage = page([usage_row(1, DAY)])
    garbage.data.update(fields)
    with HostileServer(lambda path, page_no: garbage) as server, hostile_client(server) as client:
        with pytest.raises(PopbillError) as caught:
            use_history(client)
    [field] = fields
    assert "outside the documented shape" in str(caught.value) and caught.value.call == "GetUseHistory"
    assert caught.value.field == field and f"{field}: " in str(caught.value)


def test_the_deadline_holds_through_a_proxy_read_once_from_the_environment(monkeypatch):
    """Proxies are read from the environment once, when the client is made (requests' own
    lookup on every call is off), and the watchdog also shuts a connection made through one."""
    body = json.dumps(page([usage_row(1, DAY)]).data).encode()
    trickle = Trickle(body, interval=0.1)
    with HostileServer(lambda path, page_no: trickle) as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        # A host that does not resolve: only the proxy can answer for it.
        unreachable = "http://popbill.example.invalid"
        settings = Settings.from_env(
            {"POPBILL_API_URL": unreachable, "LINKHUB_AUTH_URL": unreachable, "POPBILL_RETRY_BACKOFF": "0.01",
             "POPBILL_READ_TIMEOUT": "2", "POPBILL_CALL_DEADLINE": "1.5"}
        )  # fmt: skip
        with PopbillClient(settings) as client:
            monkeypatch.delenv("HTTP_PROXY")  # read already: the client keeps going through the proxy
            with pytest.raises(PopbillError) as caught:
                use_history(client)
        calls = proxy.history_calls("/UseHistory")
        sent = proxy.bytes_sent
    assert "deadline" in str(caught.value)
    assert calls == [1]  # the call reached the proxy, once
    assert sent < len(body)  # cut before the answer was complete
