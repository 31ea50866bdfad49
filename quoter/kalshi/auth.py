"""Kalshi request signing (kalshi-api.md §1.2 REST, §1.3 WebSocket).

Every authenticated request carries ``KALSHI-ACCESS-KEY``, ``KALSHI-ACCESS-TIMESTAMP`` (Unix
ms) and ``KALSHI-ACCESS-SIGNATURE``: standard base64 of a signature over
``f"{timestamp_ms}{METHOD}{path}"``, where ``path`` is the full URL path including the
``/trade-api/v2`` prefix and without the query string; host and body are not signed. RSA keys
sign with RSA-PSS / SHA-256 / MGF1-SHA-256 / salt = digest length; Ed25519 keys sign plainly.

Time is injected: callers pass ``timestamp_ms`` (or a ``wall_ms`` callable). Key material never
appears in a message, a repr or a log.
"""

from __future__ import annotations

import base64
import binascii
import stat
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from quoter.errors import AuthError

__all__ = [
    "HEADER_KEY",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "REST_PREFIX",
    "WS_PATH",
    "KalshiAuth",
    "PrivateKey",
    "PublicKey",
    "Signer",
    "load_private_key",
    "signing_path",
    "verify_signature",
    "ws_headers",
]

HEADER_KEY: Final = "KALSHI-ACCESS-KEY"
HEADER_TIMESTAMP: Final = "KALSHI-ACCESS-TIMESTAMP"
HEADER_SIGNATURE: Final = "KALSHI-ACCESS-SIGNATURE"
REST_PREFIX: Final = "/trade-api/v2"
WS_PATH: Final = "/trade-api/ws/v2"

PrivateKey = RSAPrivateKey | Ed25519PrivateKey
PublicKey = RSAPublicKey | Ed25519PublicKey


def _pss() -> padding.PSS:
    # §1.2: salt length = digest length (32 bytes), not PSS.MAX_LENGTH.
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def load_private_key(path: Path) -> PrivateKey:
    """Load an RSA (PKCS#1 or PKCS#8 PEM) or Ed25519 private key, refusing unsafe file modes."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise AuthError(f"private key file {path} does not exist") from None
    except OSError as exc:
        raise AuthError(f"private key file {path} cannot be read ({exc.strerror})") from None
    if mode & 0o077:
        raise AuthError(
            f"private key file {path} is readable by group/others (mode {mode:04o}); "
            f"run chmod 600 {path}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuthError(f"private key file {path} cannot be read ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Never echo the parser's message: it may quote bytes of the key.
        raise AuthError(
            f"private key file {path} is not an unencrypted PEM RSA or Ed25519 private key"
        ) from None
    if not isinstance(key, RSAPrivateKey | Ed25519PrivateKey):
        raise AuthError(
            f"private key file {path} holds a {type(key).__name__}; only RSA and Ed25519 "
            "keys can sign Kalshi requests"
        )
    return key


def signing_path(url_or_path: str) -> str:
    """Return the path Kalshi signs: full path from the root, query and fragment stripped.

    A bare API path (``/portfolio/balance``) gets the ``/trade-api/v2`` prefix, because the
    signature always covers it even when the base URL already ends in it (§1.2).
    """
    if "://" in url_or_path:
        path = urlsplit(url_or_path).path
    else:
        path = url_or_path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    if not path.startswith("/trade-api/"):
        path = REST_PREFIX + path
    return path


class Signer:
    """Signs Kalshi pre-sign strings with one API key."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key_id: str, private_key: PrivateKey) -> None:
        if not key_id:
            raise AuthError("API key id is empty")
        if not isinstance(private_key, RSAPrivateKey | Ed25519PrivateKey):
            raise AuthError(f"unsupported private key type {type(private_key).__name__}")
        self.key_id = key_id
        self._key = private_key

    @classmethod
    def from_pem_file(cls, key_id: str, path: Path) -> Signer:
        """Build a signer from a PEM key file (see :func:`load_private_key`)."""
        return cls(key_id, load_private_key(Path(path)))

    @property
    def algorithm(self) -> str:
        """``"rsa-pss-sha256"`` or ``"ed25519"``."""
        return "ed25519" if isinstance(self._key, Ed25519PrivateKey) else "rsa-pss-sha256"

    def public_key(self) -> PublicKey:
        """Return the public half (for registering with the simulator or verifying)."""
        return self._key.public_key()

    def sign(self, message: str) -> str:
        """Sign ``message`` (UTF-8) and return standard base64 with padding."""
        data = message.encode("utf-8")
        if isinstance(self._key, Ed25519PrivateKey):
            raw = self._key.sign(data)
        else:
            raw = self._key.sign(data, _pss(), hashes.SHA256())
        return base64.b64encode(raw).decode("ascii")

    def headers(self, method: str, path: str, timestamp_ms: int) -> dict[str, str]:
        """Return the three ``KALSHI-ACCESS-*`` headers for one request."""
        if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int):
            raise TypeError(f"timestamp_ms must be an int, got {type(timestamp_ms).__name__}")
        ts = str(timestamp_ms)
        message = f"{ts}{method.upper()}{signing_path(path)}"
        return {HEADER_KEY: self.key_id, HEADER_TIMESTAMP: ts, HEADER_SIGNATURE: self.sign(message)}

    def __repr__(self) -> str:
        shown = self.key_id[:8] + ("…" if len(self.key_id) > 8 else "")
        return f"Signer(key_id={shown!r}, algorithm={self.algorithm!r}, key=<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would serialise the private key; refuse rather than leak it.
        raise TypeError("Signer holds a private key and cannot be pickled")


class KalshiAuth(httpx.Auth):
    """httpx auth flow that signs each request's URL path with an injected wall clock."""

    requires_request_body = False
    requires_response_body = False

    def __init__(self, signer: Signer, wall_ms: Callable[[], int]) -> None:
        self._signer = signer
        self._wall_ms = wall_ms

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the signature headers, signing the path exactly as it goes on the wire."""
        raw_path = request.url.raw_path.decode("ascii")
        request.headers.update(self._signer.headers(request.method, raw_path, self._wall_ms()))
        yield request

    def __repr__(self) -> str:
        return f"KalshiAuth({self._signer!r})"


def ws_headers(signer: Signer, timestamp_ms: int, path: str = WS_PATH) -> dict[str, str]:
    """Return the handshake headers for the WebSocket upgrade ``GET`` (§1.3)."""
    return signer.headers("GET", path, timestamp_ms)


def verify_signature(public_key: PublicKey | PrivateKey, message: str, signature_b64: str) -> bool:
    """Return True if ``signature_b64`` is a valid signature of ``message`` under the key."""
    if isinstance(public_key, RSAPrivateKey | Ed25519PrivateKey):
        public_key = public_key.public_key()
    try:
        raw = base64.b64decode(signature_b64.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    data = message.encode("utf-8")
    try:
        if isinstance(public_key, Ed25519PublicKey):
            public_key.verify(raw, data)
        else:
            public_key.verify(raw, data, _pss(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
