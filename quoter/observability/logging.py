"""structlog, configured once: JSON off a TTY, console on one, clock-stamped, secrets redacted.

Event names are stable snake_case strings (``rfq_skipped``, ``ws_connected``) with fields;
``rfq_id`` / ``market_ticker`` are bound per task with ``log_context`` (contextvars) so every
line logged while handling an RFQ carries them.

The redaction processor runs last before rendering, so nothing a caller passes can reach the
output unredacted: values under secret-looking keys (private keys, signatures, tokens,
authorization, passwords, Kalshi's ``KALSHI-ACCESS-*`` headers; matched on whole words of the
key, see ``_SECRET_KEY_WORDS``), PEM blocks and bearer tokens
inside any string, long base64 runs (an RSA signature is 344 characters), and any literal
secret value registered with the redactor (e.g. the control token or the API key id).
"""

from __future__ import annotations

import logging
import re
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from quoter.clock import Clock

__all__ = [
    "REDACTED",
    "LogTail",
    "Redactor",
    "configure_logging",
    "format_wall_ns",
    "log_context",
]

REDACTED: Final = "[REDACTED]"

# A key is secret if one of its ``_``-separated words is one of these ("control_token",
# "KALSHI-ACCESS-SIGNATURE") or it contains one of the fragments ("private_key", any
# "KALSHI-ACCESS-*" header). Whole words, so "tokens_left" (a rate-limit level) stays visible.
_SECRET_KEY_WORDS: Final = frozenset(
    {"token", "secret", "signature", "password", "passphrase", "authorization", "pem",
     "cookie", "credentials", "sig"}
)
_SECRET_KEY_FRAGMENTS: Final = ("private_key", "privatekey", "kalshi_access_")
_PEM: Final = re.compile(
    r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL
)
_BEARER: Final = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
# 256+ base64 characters with no separators: an RSA-2048 signature (344 chars) or key body.
_LONG_B64: Final = re.compile(r"[A-Za-z0-9+/]{256,}={0,2}")


def _is_secret_key(key: str) -> bool:
    norm = key.lower().replace("-", "_")
    if any(fragment in norm for fragment in _SECRET_KEY_FRAGMENTS):
        return True
    return not _SECRET_KEY_WORDS.isdisjoint(norm.split("_"))


class Redactor:
    """Remove secrets from log events and recorded payloads (nested dicts/lists/strings)."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        self._values: tuple[str, ...] = ()
        for value in secret_values:
            self.add_secret(value)

    def add_secret(self, value: str) -> None:
        """Also scrub this literal value wherever it appears (ignored if under 4 chars)."""
        if len(value) >= 4 and value not in self._values:
            # Longest first, so a secret containing another is removed whole.
            self._values = tuple(sorted((*self._values, value), key=len, reverse=True))

    def redact_text(self, text: str) -> str:
        """Return ``text`` with PEM blocks, bearer tokens, signatures and known secrets removed."""
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        if "-----BEGIN" in text:
            text = _PEM.sub(REDACTED, text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        if len(text) >= 256:
            text = _LONG_B64.sub(REDACTED, text)
        return text

    def redact(self, value: Any) -> Any:
        """Return a redacted copy of ``value`` (mappings, sequences and strings)."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, bytes):
            return self.redact_text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {
                k: (REDACTED if isinstance(k, str) and _is_secret_key(k) else self.redact(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.redact(v) for v in value]
        return value

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """structlog processor: redact the whole event dict."""
        redacted: EventDict = self.redact(event_dict)
        return redacted


def format_wall_ns(wall_ns: int) -> str:
    """Format Unix nanoseconds as RFC 3339 UTC with microseconds, from integers only."""
    import datetime as _dt

    seconds, ns = divmod(wall_ns, 1_000_000_000)
    base = _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC)
    return f"{base:%Y-%m-%dT%H:%M:%S}.{ns // 1000:06d}Z"


class _ClockStamper:
    """Add ``timestamp`` from the injected clock (not the process clock)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict["timestamp"] = format_wall_ns(self._clock.wall_ns())
        return event_dict


class LogTail:
    """A log stream for while a full-screen view is live: keeps the last lines for the view
    to draw below itself, and appends every line to ``path`` (if given) so none is lost.

    Writing to the terminal while the view redraws would interleave and scroll it away.
    """

    def __init__(self, capacity: int = 200, path: Path | None = None) -> None:
        self.lines: deque[str] = deque(maxlen=capacity)
        self.path = path
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8", buffering=1)
        self._partial = ""

    def write(self, text: str) -> int:
        """Take rendered log text (one or more lines)."""
        if self._file is not None:
            self._file.write(text)
        parts = (self._partial + text).split("\n")
        self._partial = parts.pop()
        self.lines.extend(parts)
        return len(text)

    def flush(self) -> None:
        """Flush the file copy."""
        if self._file is not None:
            self._file.flush()

    def isatty(self) -> bool:
        """Not a terminal: the view draws these lines, without colours."""
        return False

    def close(self) -> None:
        """Close the file copy."""
        if self._file is not None:
            self._file.close()
            self._file = None


def configure_logging(
    clock: Clock,
    *,
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | LogTail | None = None,
    redactor: Redactor | None = None,
) -> Redactor:
    """Configure structlog for the whole process; returns the redactor (add secrets to it)."""
    out: Any = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    redactor = redactor if redactor is not None else Redactor()
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _ClockStamper(clock),
        structlog.processors.format_exc_info,
        redactor,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    return redactor


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind fields (e.g. ``rfq_id``, ``market_ticker``) to every log line in this context."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield
