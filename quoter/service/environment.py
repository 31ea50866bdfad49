"""Service settings: environment, mode, credentials, endpoints, paths (env prefix ``QUOTER_``).

Secrets come only from the environment (or the CLI), never from YAML strategy configs. The
private key itself is never loaded here: only its path, which ``repr`` hides along with the
key id and the control token.

Modes:

* ``shadow`` — connect to the exchange (``env``), decode, decide, record; send nothing.
* ``paper`` — trade against the local simulator (``sim_url``); ``env`` only names the keys.
* ``live`` — quote on the exchange named by ``env``.

Production needs both ``env=prod`` and the explicit confirmation
``i_understand_this_is_production=True``, which is deliberately **not** read from the
environment: it must be typed on the command line (``--i-understand-this-is-production``), so
a stray ``QUOTER_ENV=prod`` in a shell profile cannot start a production run by itself.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from quoter.errors import ConfigError

__all__ = [
    "ENDPOINTS",
    "PROD_CONFIRM_FLAG",
    "ControlSettings",
    "Settings",
    "add_settings_arguments",
    "build_settings",
    "is_loopback",
    "is_production_host",
    "load_or_create_token",
    "read_token",
    "settings_error_text",
    "settings_from_args",
]

Env = Literal["demo", "prod"]
Mode = Literal["shadow", "paper", "live"]

#: Recommended hosts per environment (kalshi-api.md §1.1): (REST base URL, WebSocket URL).
ENDPOINTS: Final[dict[str, tuple[str, str]]] = {
    "prod": (
        "https://external-api.kalshi.com/trade-api/v2",
        "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
    ),
    "demo": (
        "https://external-api.demo.kalshi.co/trade-api/v2",
        "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
    ),
}
PROD_CONFIRM_FLAG: Final = "--i-understand-this-is-production"
_CONFIRM_FIELD: Final = "i_understand_this_is_production"
_TOKEN_BYTES: Final = 32
DEFAULT_CONTROL_PORT: Final = 8790
DEFAULT_TOKEN_FILE: Final = Path("var/control.token")


#: Kalshi's production domain (kalshi-api.md §1.1); demo is ``*.demo.kalshi.co``.
PRODUCTION_DOMAIN: Final = "kalshi.com"


def is_production_host(host: str) -> bool:
    """True for Kalshi's production domain or any host under it (case-insensitive)."""
    host = host.lower().rstrip(".")
    return host == PRODUCTION_DOMAIN or host.endswith("." + PRODUCTION_DOMAIN)


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def is_loopback(host: str) -> bool:
    """Return True if ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _DropConfirmation(PydanticBaseSettingsSource):
    """Wrap a source so it can never supply the production confirmation."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self._inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = dict(self._inner())
        values.pop(_CONFIRM_FIELD, None)
        return values


class Settings(BaseSettings):
    """How and where this quoter runs."""

    model_config = SettingsConfigDict(
        env_prefix="QUOTER_", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    env: Env = "demo"
    mode: Mode = "shadow"
    i_understand_this_is_production: bool = False

    api_key_id: str | None = Field(default=None, repr=False)
    private_key_path: Path | None = Field(default=None, repr=False)

    # Empty means "derive from env and mode" (filled in by `_derive_urls`).
    rest_base_url: str = ""
    ws_url: str = ""
    sim_url: str = "http://127.0.0.1:8765"

    db_path: Path = Path("var/quoter.db")
    #: SQLite ``synchronous`` for the store. NORMAL (WAL): a commit survives ``kill -9`` and any
    #: process crash without an fsync on the confirm path; only an OS crash or power cut can
    #: lose the last commits. FULL also fsyncs each commit (~0.3 ms p50, ms at p99 here).
    store_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    record_dir: Path | None = Path("var/recordings")

    control_host: str = "127.0.0.1"
    control_port: int = Field(default=DEFAULT_CONTROL_PORT, ge=0, le=65535)
    control_token: SecretStr | None = None
    control_token_file: Path = DEFAULT_TOKEN_FILE
    #: When set, /metrics needs ``Authorization: Bearer <metrics_token>`` (QUOTER_METRICS_TOKEN).
    metrics_token: SecretStr | None = None
    #: Where alerts go (halt, reconciliation mismatch, repeated rejections, feed loss): a
    #: Slack-style incoming webhook URL, secret (QUOTER_ALERT_WEBHOOK_URL). None: logged only.
    alert_webhook_url: SecretStr | None = None
    #: A second address for /metrics and /healthz only (no control routes), e.g. 0.0.0.0 for
    #: a Prometheus in another container; None serves them on the control port only.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    #: Send REST requests over the lean keep-alive HTTP/1.1 transport
    #: (``quoter.kalshi.lean_http``, QUOTER_LEAN_HTTP); False: httpx's default (httpcore).
    lean_http: bool = True

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read the CLI (init) first, then the environment; no dotenv, no secrets dir."""
        return (init_settings, _DropConfirmation(settings_cls, env_settings))

    @model_validator(mode="before")
    @classmethod
    def _derive_urls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        env = str(data.get("env") or "demo")
        mode = str(data.get("mode") or "shadow")
        if env not in ENDPOINTS:
            return data  # the field validator reports the bad env
        rest, ws = ENDPOINTS[env]
        if mode == "paper":
            sim = str(data.get("sim_url") or "http://127.0.0.1:8765").rstrip("/")
            rest = f"{sim}/trade-api/v2"
            ws = "ws" + sim.removeprefix("http") + "/trade-api/ws/v2"
        out = dict(data)
        out["rest_base_url"] = data.get("rest_base_url") or rest
        out["ws_url"] = data.get("ws_url") or ws
        return out

    @field_validator("control_host")
    @classmethod
    def _loopback_only(cls, host: str) -> str:
        if not is_loopback(host):
            raise ValueError(f"control_host must be a loopback address, got {host!r}")
        return host

    @field_validator("rest_base_url")
    @classmethod
    def _rest_url_shape(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"rest_base_url must be an http(s) URL, got {url!r}")
        return url.rstrip("/")

    @field_validator("ws_url")
    @classmethod
    def _ws_url_shape(cls, url: str) -> str:
        if not url.startswith(("wss://", "ws://")):
            raise ValueError(f"ws_url must be a ws(s) URL, got {url!r}")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _production_guard(self) -> Settings:
        # "Production" is decided by the hosts actually used, not by the label: a URL
        # override (QUOTER_REST_BASE_URL / QUOTER_WS_URL, or QUOTER_SIM_URL in paper mode)
        # pointing at Kalshi's production host is production whatever ``env`` says.
        prod_urls = [name for name in ("rest_base_url", "ws_url")
                     if is_production_host(_host(getattr(self, name)))]
        if prod_urls and self.env != "prod":
            raise ValueError(
                f"{' and '.join(prod_urls)} point at the production host, but env is "
                f"{self.env!r}: use --env prod with {PROD_CONFIRM_FLAG}"
            )
        if self.env == "prod" and not self.i_understand_this_is_production:
            raise ValueError(
                f"env=prod needs the explicit {PROD_CONFIRM_FLAG} flag on the command line"
            )
        if self.i_understand_this_is_production and self.env != "prod":
            raise ValueError(f"{PROD_CONFIRM_FLAG} given but env is {self.env!r}, not 'prod'")
        for name in prod_urls:
            # Signed requests to the production host never travel in the clear, in any mode.
            if not getattr(self, name).startswith(("https://", "wss://")):
                raise ValueError(f"{name} to the production host must use TLS")
        if self.mode == "live" and self.env == "prod":
            for name in ("rest_base_url", "ws_url"):
                if not getattr(self, name).startswith(("https://", "wss://")):
                    raise ValueError(f"live production {name} must use TLS")
        return self

    @property
    def is_production(self) -> bool:
        """True when this run can touch real money (by label or by the hosts it talks to)."""
        return (self.env == "prod" and self.mode != "paper") or any(
            is_production_host(_host(url)) for url in (self.rest_base_url, self.ws_url))

    @property
    def sends_orders(self) -> bool:
        """True when quotes and confirms are really sent (not shadow)."""
        return self.mode != "shadow"

    def resolve_control_token(self) -> SecretStr:
        """Return the control token: the configured one, or the token file (created if absent)."""
        if self.control_token is not None:
            return self.control_token
        return load_or_create_token(self.control_token_file)


class ControlSettings(BaseSettings):
    """The slice of settings the control CLI client needs (same ``QUOTER_*`` variables).

    Separate from ``Settings`` so that ``quoter status`` works in a production shell without
    the production confirmation, and ignores settings it does not use.
    """

    model_config = SettingsConfigDict(
        env_prefix="QUOTER_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    control_host: str = "127.0.0.1"
    control_port: int = Field(default=DEFAULT_CONTROL_PORT, ge=1, le=65535)
    control_token: SecretStr | None = None
    control_token_file: Path = DEFAULT_TOKEN_FILE

    @field_validator("control_host")
    @classmethod
    def _loopback_only(cls, host: str) -> str:
        if not is_loopback(host):
            raise ValueError(f"control_host must be a loopback address, got {host!r}")
        return host

    def token(self) -> SecretStr:
        """Return the configured token, else read (never create) the token file."""
        if self.control_token is not None:
            return self.control_token
        return read_token(self.control_token_file)

    @property
    def base_url(self) -> str:
        """The control server's base URL."""
        host = f"[{self.control_host}]" if ":" in self.control_host else self.control_host
        return f"http://{host}:{self.control_port}"


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"control token file {path} is readable by group/others (mode {mode:04o}); "
            f"run chmod 600 {path}"
        )


def read_token(path: Path) -> SecretStr:
    """Read the control token from ``path`` (which must be mode 0600)."""
    try:
        _check_private(path)
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(
            f"control token file {path} not found (is the service running?)"
        ) from None
    if not text:
        raise ConfigError(f"control token file {path} is empty")
    return SecretStr(text)


def load_or_create_token(path: Path) -> SecretStr:
    """Read the control token file, or create it (mode 0600) with a fresh random token."""
    if path.exists():
        return read_token(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    try:
        # O_EXCL: if two processes race, exactly one writes and the other reads its token.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return SecretStr(token)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the CLI flags that override settings (``--env``, ``--mode``, the prod flag...)."""
    parser.add_argument("--env", choices=["demo", "prod"],
                        help="exchange environment (default: demo, or QUOTER_ENV)")
    parser.add_argument("--mode", choices=["shadow", "paper", "live"],
                        help="shadow = price, send nothing; paper = trade the simulator; "
                        "live = real quotes (default: shadow, or QUOTER_MODE)")
    parser.add_argument(
        PROD_CONFIRM_FLAG,
        dest=_CONFIRM_FIELD,
        action="store_true",
        default=None,
        help="required with --env prod: you mean to trade real money",
    )
    parser.add_argument("--db", dest="db_path", type=Path,
                        help="SQLite store path (default: var/quoter.db, or QUOTER_DB_PATH)")
    parser.add_argument("--record-dir", dest="record_dir", type=Path,
                        help="recording directory (default: var/recordings, or "
                        "QUOTER_RECORD_DIR)")
    parser.add_argument("--control-port", dest="control_port", type=int,
                        help=f"control API port on 127.0.0.1; 0 picks a free one (default: "
                        f"{DEFAULT_CONTROL_PORT}, or QUOTER_CONTROL_PORT)")
    parser.add_argument(
        "--token-file", dest="control_token_file", type=Path,
        help=f"control token file (default: {DEFAULT_TOKEN_FILE}, or "
        "QUOTER_CONTROL_TOKEN_FILE)",
    )


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Build ``Settings`` from the environment plus the CLI flags that were given."""
    names = (
        "env", "mode", _CONFIRM_FIELD, "db_path", "record_dir", "control_port",
        "control_token_file",
    )
    values: dict[str, Any] = {
        name: getattr(args, name) for name in names if getattr(args, name, None) is not None
    }
    values.update(overrides)
    return build_settings(**values)


def build_settings(**values: Any) -> Settings:
    """Build ``Settings``; a bad value raises ``ConfigError`` with one line per problem."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(settings_error_text(exc)) from None


def settings_error_text(exc: ValidationError) -> str:
    """Describe settings errors for people: ``invalid settings: field: message`` per line."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        lines.append(f"invalid settings: {loc}: {msg}" if loc else f"invalid settings: {msg}")
    return "\n".join(lines) or "invalid settings"
