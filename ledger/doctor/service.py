"""`diagnose`: the doctor's checks in order, each yielded as soon as it is known."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

from sqlalchemy import select

from ledger.doctor import checks
from ledger.doctor.checks import Finding
from ledger.members.models import Member
from ledger.popbill import PopbillClient

TIMEOUT = 5.0  # seconds for any one network check: a doctor must not hang


def _first_member(engine) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(select(Member.corp_num).where(Member.active).order_by(Member.corp_num).limit(1))


def diagnose(env: Mapping[str, str] | None = None) -> Iterator[Finding]:
    settings, loaded = checks.load(env)
    yield loaded
    if settings is None:
        return
    yield checks.secret_key(settings)
    yield checks.link_id(settings)
    credentials = checks.sandbox_key_stays_home(settings)
    yield credentials
    auth = checks.host_answers("auth host", settings.resolved_auth_url, "/Time", TIMEOUT)
    yield auth
    yield checks.host_answers("API host", settings.resolved_api_url, "/", TIMEOUT)
    quick = dataclasses.replace(
        settings, retry_attempts=1, connect_timeout=min(settings.connect_timeout, TIMEOUT), read_timeout=TIMEOUT
    )
    with PopbillClient(quick) as client:
        clock = checks.clock(client, settings) if not auth.failed else checks.skip("clock", "the auth host is down")
        yield clock
        database, engine = checks.database(settings)
        yield database
        if credentials.failed or auth.failed:
            yield checks.skip("token", "not attempted: see the lines above")
        elif settings.partner_corp_num is None and database.failed:
            yield checks.no_member_to_ask_for()
        else:
            corp_num = settings.partner_corp_num or _first_member(engine)
            yield checks.token_and_partner_balance(client, corp_num, clock_off=clock.failed)
    if engine is not None:
        engine.dispose()
    yield checks.broker(settings, TIMEOUT)
    yield from checks.alert_channels(settings)
