"""The SMTP password never crosses the network unencrypted: against a local server that offers
STARTTLS and one that does not (both advertise AUTH before TLS, as a careless server does),
no AUTH is ever sent before TLS, and `ledger doctor` fails a configuration that would."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import subprocess
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from ledger.alerts.outbox import mail_security_problem, send_mail
from ledger.doctor.checks import alert_channels
from ledger.settings import Settings

USER, PASSWORD = "ledger", "s3cret-pass"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, and the client trusting it (SSL_CERT_FILE is
    where OpenSSL's default verify paths, and so ssl.create_default_context, look)."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class Server:
    """aiosmtpd with AUTH advertised even before TLS; records every login and message."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, smtps: ssl.SSLContext | None = None) -> None:
        self.logins: list[tuple[str, bool]] = []  # (user, over TLS)
        self.messages: list[str] = []
        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope):
                server.messages.append(envelope.content.decode("utf-8", "replace"))
                return "250 OK"

        def authenticate(smtp, session, envelope, mechanism, auth_data):
            encrypted = session.ssl is not None or smtp.transport.get_extra_info("ssl_object") is not None
            server.logins.append((auth_data.login.decode(), encrypted))
            return AuthResult(success=auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD)

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, ssl_context=smtps, tls_context=tls,
            authenticator=authenticate, auth_require_tls=False, server_hostname="127.0.0.1",
        )  # fmt: skip
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


def _server_context(certificate) -> ssl.SSLContext:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def trusted(certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    return certificate


def _settings(port: int, **env) -> Settings:
    base = {"LEDGER_SMTP_HOST": "127.0.0.1", "LEDGER_SMTP_PORT": str(port), "LEDGER_SMTP_USER": USER,
            "LEDGER_SMTP_PASSWORD": PASSWORD, "LEDGER_MAIL_TO": "ops@example.com"}  # fmt: skip
    return Settings.from_env({**base, **env})


def _message() -> EmailMessage:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = "[TEST] balance", "ledger@example.com", "ops@example.com"
    message.set_content("low balance")
    return message


def test_a_user_turns_starttls_on_by_default_and_the_login_goes_over_tls(trusted):
    server = Server(tls=_server_context(trusted))
    try:
        settings = _settings(server.port)
        assert settings.smtp_starttls and mail_security_problem(settings) is None
        send_mail(settings, _message())
    finally:
        server.close()
    assert server.logins == [(USER, True)] and len(server.messages) == 1


def test_a_server_without_starttls_gets_no_auth_and_no_mail():
    server = Server()
    try:
        with pytest.raises(RuntimeError, match="does not offer STARTTLS.*no password either"):
            send_mail(_settings(server.port), _message())
    finally:
        server.close()
    assert server.logins == [] and server.messages == []


def test_starttls_off_with_a_user_is_refused_before_connecting_and_doctor_fails():
    server = Server()
    try:
        settings = _settings(server.port, LEDGER_SMTP_STARTTLS="false")
        with pytest.raises(RuntimeError, match="password would cross the network unencrypted"):
            send_mail(settings, _message())
        [mail] = [f for f in alert_channels(settings) if f.name == "mail"]
        assert mail.failed and "LEDGER_SMTP_INSECURE_PLAINTEXT_LOGIN" in mail.detail
    finally:
        server.close()
    assert server.logins == [] and server.messages == []


def test_smtps_logs_in_over_tls(trusted):
    server = Server(smtps=_server_context(trusted))
    try:
        send_mail(_settings(server.port, LEDGER_SMTP_SSL="true", LEDGER_SMTP_STARTTLS="false"), _message())
    finally:
        server.close()
    assert server.logins == [(USER, True)] and len(server.messages) == 1


def test_a_plain_text_login_only_when_said_in_so_many_words():
    server = Server()
    try:
        settings = _settings(server.port, LEDGER_SMTP_STARTTLS="false", LEDGER_SMTP_INSECURE_PLAINTEXT_LOGIN="true")
        [mail] = [f for f in alert_channels(settings) if f.name == "mail"]
        assert not mail.failed and "plain-text login" in mail.detail
        send_mail(settings, _message())
        # Without a user nothing secret travels: no TLS needed, and doctor says so.
        anonymous = dataclasses.replace(settings, smtp_user=None, smtp_password=None, smtp_insecure_plaintext_login=False)
        assert mail_security_problem(anonymous) is None
    finally:
        server.close()
    assert server.logins == [(USER, False)] and len(server.messages) == 1
