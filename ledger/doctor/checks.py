"""The checks behind `ledger doctor`: each takes what it needs and returns one Finding.

They never raise and never print a secret. A check that cannot run because an earlier one
failed says so ("skip") instead of failing twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests
from kombu import Connection
from sqlalchemy.exc import SQLAlchemyError

from ledger.alerts.outbox import mail_security_problem
from ledger.db import migrate
from ledger.db.engine import make_engine
from ledger.popbill.errors import AuthError, PopbillError
from ledger.settings import SANDBOX_LINK_ID, SANDBOX_SECRET_KEY, Settings, SettingsError

CLOCK_TOLERANCE = dt.timedelta(minutes=1)


@dataclasses.dataclass(frozen=True)
class Finding:
    name: str
    status: str  # ok | FAIL | skip
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


def ok(name: str, detail: str) -> Finding:
    return Finding(name, "ok", detail)


def fail(name: str, detail: str) -> Finding:
    return Finding(name, "FAIL", detail)


def skip(name: str, detail: str) -> Finding:
    return Finding(name, "skip", detail)


def load(env: Mapping[str, str] | None = None) -> tuple[Settings | None, Finding]:
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        return None, fail("settings", str(exc))
    return settings, ok("settings", "every variable parses")


def secret_key(settings: Settings) -> Finding:
    # Settings refused a malformed key already; reaching here means it decoded to 32 bytes.
    which = "the sandbox key" if settings.secret_key.reveal() == SANDBOX_SECRET_KEY else "POPBILL_SECRET_KEY"
    return ok("secret key", f"{which}: valid base64, 32 bytes")


def link_id(settings: Settings) -> Finding:
    if not settings.link_id.strip():
        return fail("LinkID", "POPBILL_LINK_ID is empty")
    if settings.link_id == SANDBOX_LINK_ID:
        return ok("LinkID", f"{SANDBOX_LINK_ID} (the simulator's; set POPBILL_LINK_ID for real Popbill)")
    return ok("LinkID", settings.link_id)


def sandbox_key_stays_home(settings: Settings) -> Finding:
    real = settings.real_hosts
    if settings.uses_sandbox_credentials and real:
        return fail(
            "credentials",
            f"the sandbox LinkID/key would go to {real[0]}: set POPBILL_LINK_ID and POPBILL_SECRET_KEY,"
            ' or point POPBILL_API_URL and LINKHUB_AUTH_URL at the simulator (eval "$(ledger sandbox env)")',
        )
    target = "real Popbill" if real else "a local Popbill (simulator)"
    kind = "sandbox" if settings.uses_sandbox_credentials else "your"
    mode = "test bed" if settings.is_test else "production"
    return ok("credentials", f"{kind} credentials for {target}, {mode} ({settings.service_id})")


def host_answers(name: str, base_url: str, path: str, timeout: float) -> Finding:
    parts = urlsplit(base_url)
    try:
        socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError) as exc:
        return fail(name, f"{parts.hostname} does not resolve ({exc.strerror or exc})")
    try:
        answer = requests.get(base_url + path, timeout=timeout)
    except requests.RequestException as exc:
        return fail(name, f"{base_url} does not answer ({type(exc).__name__})")
    return ok(name, f"{base_url} answers (HTTP {answer.status_code})")


def token_and_partner_balance(client, corp_num: str | None, *, clock_off: bool = False) -> Finding:
    if corp_num is None:
        return skip("token", "no CorpNum to ask for (set LEDGER_PARTNER_CORP_NUM or add a member)")
    try:
        balance = client.get_partner_balance(corp_num)
    except PopbillError as exc:
        found = fail("token", f"{exc.call or 'call'} for {corp_num} failed: {exc}")
        if isinstance(exc, AuthError) and exc.call == "Token":  # Linkhub refused to sign us in
            hint = (
                "the clock is off (see the clock line)"
                if clock_off
                else "check POPBILL_LINK_ID and POPBILL_SECRET_KEY (the pair Popbill issued, for this host)"
            )
            found = dataclasses.replace(found, detail=f"{found.detail}; {hint}")
        return found
    return ok("token", f"issued for {corp_num}; GetPartnerBalance = {balance}")


def no_member_to_ask_for() -> Finding:
    """The token check's CorpNum comes from the members, which a failed database cannot give."""
    return skip("token", "no CorpNum to ask for: the database check failed (or set LEDGER_PARTNER_CORP_NUM)")


def clock(client, settings: Settings) -> Finding:
    try:
        server = client.get_server_time()
    except PopbillError as exc:
        return fail("clock", f"GET /Time failed: {exc}")
    drift = dt.datetime.now(dt.UTC) - server
    seconds = drift.total_seconds()
    described = f"this machine is {abs(seconds):.0f} s {'ahead of' if seconds > 0 else 'behind'} Popbill"
    if abs(drift) <= CLOCK_TOLERANCE:
        return ok("clock", described)
    if not settings.use_local_time:
        return ok("clock", f"{described}; requests use Popbill's clock (POPBILL_USE_LOCAL_TIME=false)")
    return fail("clock", f"{described}: fix NTP, or set POPBILL_USE_LOCAL_TIME=false")


def database(settings: Settings) -> tuple[Finding, object | None]:
    try:
        engine = make_engine(settings, connect_args={"connect_timeout": 5})
        current, heads = migrate.revisions(engine)
    except (SQLAlchemyError, SettingsError, RuntimeError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return fail("database", f"unreachable: {reason}"), None
    where = "embedded" if settings.database_url is None else "LEDGER_DATABASE_URL"
    if current != heads:
        at = ", ".join(sorted(current)) or "no ledger tables"
        return fail("database", f"{where} reachable but not migrated ({at}): run `ledger db upgrade`"), engine
    return ok("database", f"{where} reachable, at the newest revision ({', '.join(sorted(heads))})"), engine


def broker(settings: Settings, timeout: float) -> Finding:
    shown = urlsplit(settings.broker_url)
    where = f"{shown.scheme}://{shown.hostname}:{shown.port or ''}".rstrip(":")
    try:
        with Connection(settings.broker_url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except Exception as exc:  # kombu raises the transport's own errors
        return fail("broker", f"{where} does not answer ({type(exc).__name__})")
    return ok("broker", f"{where} answers")


def alert_channels(settings: Settings) -> list[Finding]:

    found = []
    if settings.alert_webhook_url:
        parts = urlsplit(settings.alert_webhook_url.reveal())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            found.append(fail("webhook", "LEDGER_ALERT_WEBHOOK_URL is not an http(s) URL"))
        else:
            found.append(ok("webhook", f"{parts.scheme}://{parts.hostname}/… (path hidden: it may carry a token)"))
    if settings.smtp_host or settings.mail_to:
        if not settings.smtp_host:
            found.append(fail("mail", "LEDGER_MAIL_TO is set but LEDGER_SMTP_HOST is not"))
        elif not settings.mail_to:
            found.append(fail("mail", "LEDGER_SMTP_HOST is set but LEDGER_MAIL_TO is empty"))
        elif bad := [a for a in (settings.mail_from, *settings.mail_to) if "@" not in a]:
            found.append(fail("mail", f"not a mail address: {bad[0]!r} (LEDGER_MAIL_FROM / LEDGER_MAIL_TO)"))
        elif problem := mail_security_problem(settings):
            found.append(fail("mail", problem))
        else:
            security = ("SMTPS" if settings.smtp_ssl else "STARTTLS" if settings.smtp_starttls
                        else "no TLS, plain-text login (LEDGER_SMTP_INSECURE_PLAINTEXT_LOGIN)" if settings.smtp_user
                        else "no TLS, no login")  # fmt: skip
            found.append(ok("mail", f"{settings.smtp_host}:{settings.smtp_port} ({security}) to "
                                    f"{len(settings.mail_to)} recipients"))  # fmt: skip
    if not found:
        found.append(ok("alerts", "log only (no webhook or mail configured)"))
    return found
