"""The exception taxonomy. The class of an error decides what the service does about it.

::

    QuoterError
    ├── FatalError            stop the service (bad credentials, bad config, broken invariant)
    │   ├── ConfigError       a config file or setting is invalid (names file, line, field)
    │   ├── AuthError         the exchange rejected our credentials (401/403), or a key is unsafe
    │   └── ReconciliationError  our positions differ from the exchange's: halt quoting
    ├── TransientError        retry with backoff (network, 5xx, 429, timeouts)
    │   ├── TransportError    connection failed / reset / timed out
    │   ├── RateLimitedError  HTTP 429 {"error": "too many requests"}
    │   └── ServerError       HTTP 5xx
    ├── ExchangeRejectedError the exchange refused the request (4xx with code/message):
    │                         record it and carry on
    ├── DecodeError           a malformed frame or response: count it, skip it, keep the raw bytes
    ├── PagingLimitError      a REST listing exceeded its max_pages bound: raise the bound
    ├── ControlRefusedError   an operator action cannot be done now (e.g. resume with a KILL
    │                         file present): answer why, change nothing
    └── StrategyError         a pricer raised or overran its budget: pull that market's quotes

Money errors (``quoter.domain.money.MoneyError``) are ``ValueError``s raised by the domain and
are turned into ``DecodeError`` at the wire edge or ``StrategyError`` in pricing.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "ControlRefusedError",
    "DecodeError",
    "ExchangeRejectedError",
    "FatalError",
    "PagingLimitError",
    "QuoterError",
    "RateLimitedError",
    "ReconciliationError",
    "ServerError",
    "StrategyError",
    "TransientError",
    "TransportError",
]


class QuoterError(Exception):
    """Base of every error quoter raises on purpose."""


class FatalError(QuoterError):
    """The service cannot continue safely."""


class ConfigError(FatalError):
    """Invalid configuration."""


class AuthError(FatalError):
    """Credentials rejected, missing or unsafe."""


class ReconciliationError(FatalError):
    """Our books differ from the exchange's."""


class TransientError(QuoterError):
    """A failure worth retrying."""


class TransportError(TransientError):
    """The request or connection failed before an HTTP answer."""


class _HttpStatusMixin:
    status_code: int
    code: str
    error_message: str
    method: str
    path: str


class RateLimitedError(TransientError, _HttpStatusMixin):
    """HTTP 429."""

    def __init__(self, method: str, path: str, message: str = "too many requests") -> None:
        super().__init__(f"{method} {path}: 429 {message}")
        self.status_code, self.code, self.error_message = 429, "too_many_requests", message
        self.method, self.path = method, path


class ServerError(TransientError, _HttpStatusMixin):
    """HTTP 5xx."""

    def __init__(self, method: str, path: str, status_code: int, message: str) -> None:
        super().__init__(f"{method} {path}: {status_code} {message}")
        self.status_code, self.code, self.error_message = status_code, "server_error", message
        self.method, self.path = method, path


class ExchangeRejectedError(QuoterError, _HttpStatusMixin):
    """HTTP 4xx with Kalshi's ``{"code", "message", "details"?}`` body."""

    def __init__(
        self, method: str, path: str, status_code: int, code: str, message: str,
        details: str | None = None,
    ) -> None:
        super().__init__(f"{method} {path}: {status_code} {code}: {message}")
        self.status_code, self.code, self.error_message = status_code, code, message
        self.details, self.method, self.path = details, method, path


class DecodeError(QuoterError):
    """A frame or response body could not be decoded into its typed model."""

    def __init__(
        self, message: str, raw: bytes | str = b"", msg_type: str | None = None,
        reason: str = "malformed",
    ) -> None:
        super().__init__(message)
        self.raw = raw
        self.msg_type = msg_type
        #: A stable label for metrics: malformed, too_deep, too_large, bad_value, ...
        self.reason = reason


class StrategyError(QuoterError):
    """A pricing module failed."""


class PagingLimitError(QuoterError):
    """A paged listing had more pages than the caller's ``max_pages`` bound."""


class ControlRefusedError(QuoterError):
    """An operator action was refused; the message says what to do first."""
