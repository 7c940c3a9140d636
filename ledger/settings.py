"""The one settings object. Nothing else in the project reads os.environ."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from ledger.secret import Secret

# Credentials the simulator accepts out of the box, so that the zero-setup demo and the
# tests need no Popbill account. They open nothing real.
SANDBOX_LINK_ID = "LEDGER_SANDBOX"
SANDBOX_SECRET_KEY = "bGVkZ2VyLXNhbmRib3gtc2VjcmV0LWtleS0wMDAwMDA="

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise SettingsError(f"{name} must be {bounds}, got {raw!r}")
    return value


def _default_home() -> Path:
    data_home = Path.home() / ".local" / "share"
    return data_home / "popbill-ledger"


@dataclasses.dataclass(frozen=True)
class Settings:
    link_id: str = SANDBOX_LINK_ID
    secret_key: Secret = dataclasses.field(default_factory=lambda: Secret(SANDBOX_SECRET_KEY))
    is_test: bool = True
    ip_restrict: bool = True
    use_static_ip: bool = False
    use_ga_ip: bool = False
    api_url: str | None = None
    auth_url: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    retry_attempts: int = 5
    retry_max_seconds: float = 60.0
    retry_backoff: float = 0.5
    ledger_home: Path = dataclasses.field(default_factory=_default_home)
    database_url: Secret | None = None
    sync_lookback_days: int = 3
    sync_window_days: int = 31
    sync_initial_days: int = 365
    sync_per_page: int = 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        secret = env.get("POPBILL_SECRET_KEY") or SANDBOX_SECRET_KEY
        database_url = env.get("LEDGER_DATABASE_URL") or None
        home = env.get("LEDGER_HOME")
        return cls(
            link_id=env.get("POPBILL_LINK_ID") or SANDBOX_LINK_ID,
            secret_key=Secret(secret),
            is_test=_flag(env, "POPBILL_IS_TEST", True),
            ip_restrict=_flag(env, "POPBILL_IP_RESTRICT", True),
            use_static_ip=_flag(env, "POPBILL_USE_STATIC_IP", False),
            use_ga_ip=_flag(env, "POPBILL_USE_GA_IP", False),
            api_url=(env.get("POPBILL_API_URL") or None),
            auth_url=(env.get("LINKHUB_AUTH_URL") or None),
            connect_timeout=_number(env, "POPBILL_CONNECT_TIMEOUT", 5.0, minimum=0.001),
            read_timeout=_number(env, "POPBILL_READ_TIMEOUT", 60.0, minimum=0.001),
            retry_attempts=_integer(env, "POPBILL_RETRY_ATTEMPTS", 5, minimum=1),
            retry_max_seconds=_number(env, "POPBILL_RETRY_MAX_SECONDS", 60.0, minimum=0),
            retry_backoff=_number(env, "POPBILL_RETRY_BACKOFF", 0.5, minimum=0),
            ledger_home=Path(home).expanduser() if home else _default_home(),
            database_url=Secret(database_url) if database_url else None,
            sync_lookback_days=_integer(env, "LEDGER_SYNC_LOOKBACK_DAYS", 3, minimum=0),
            sync_window_days=_integer(env, "LEDGER_SYNC_WINDOW_DAYS", 31, minimum=1),
            sync_initial_days=_integer(env, "LEDGER_SYNC_INITIAL_DAYS", 365, minimum=0),
            sync_per_page=_integer(env, "LEDGER_SYNC_PER_PAGE", 1000, minimum=1, maximum=1000),
        )

    def with_hosts(self, base_url: str) -> Settings:
        """The same settings pointed at one host serving both auth and API paths (the simulator)."""
        return dataclasses.replace(self, api_url=base_url, auth_url=base_url)

    @property
    def service_id(self) -> str:
        return "POPBILL_TEST" if self.is_test else "POPBILL"

    @property
    def resolved_api_url(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        prefix = "ga-" if self.use_ga_ip else "static-" if self.use_static_ip else ""
        host = "popbill-test.linkhub.co.kr" if self.is_test else "popbill.linkhub.co.kr"
        return f"https://{prefix}{host}"

    @property
    def resolved_auth_url(self) -> str:
        if self.auth_url:
            return self.auth_url.rstrip("/")
        prefix = "ga-" if self.use_ga_ip else "static-" if self.use_static_ip else ""
        return f"https://{prefix}auth.linkhub.co.kr"
