"""Register extra accounts on a running simulator: a requester, a second maker, a harness.

Kalshi has no endpoint for this (accounts and keys are made on its website), so it is a
simulator route next to ``/sim/ledger``: ``POST /sim/accounts`` (loopback clients only,
unsigned) with ``{"user_id", "public_key_pem", "balance_dollars"?}`` opens the account with
that cash (default $10,000, the demo bot's), registers the public key under a new key id and
answers 201 ``{"user_id", "api_key_id", "communications_id", "balance_dollars"}``. The
private key never reaches the simulator. ``quoter sim --requester-key PATH`` /
``--account USER_ID`` do the same at start with a key the simulator writes (0600).

Bad input answers 400 ``invalid_parameters`` (unknown field, bad user id, a PEM that is not
an RSA or Ed25519 public key, a bad amount) and an existing user id 409 ``conflict``, in
Kalshi's nested error shape, before anything is registered.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from quoter.domain.money import MoneyError, parse_dollars
from quoter.sim import wire
from quoter.sim.exchange import SimExchange
from quoter.sim.models import SimError

__all__ = [
    "DEFAULT_BALANCE_MICROS",
    "AccountRequest",
    "RegisteredAccount",
    "check_user_id",
    "open_account",
    "parse_account_request",
]

#: What an account opened without a balance starts with (the demo bot's default, $10,000).
DEFAULT_BALANCE_MICROS = 10_000_000_000
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FIELDS = frozenset({"user_id", "public_key_pem", "balance_dollars"})


@dataclass(frozen=True, slots=True)
class AccountRequest:
    """A validated ``POST /sim/accounts`` body."""

    user_id: str
    public_key: RSAPublicKey | Ed25519PublicKey
    balance_micros: int


@dataclass(frozen=True, slots=True)
class RegisteredAccount:
    """An account opened with one API key."""

    user_id: str
    api_key_id: str
    communications_id: str
    balance_micros: int

    def to_json(self) -> dict[str, Any]:
        """The route's answer."""
        return {"user_id": self.user_id, "api_key_id": self.api_key_id,
                "communications_id": self.communications_id,
                "balance_dollars": wire.cash(self.balance_micros)}


def _bad(message: str) -> SimError:
    return SimError(400, "invalid_parameters", message)


def check_user_id(user_id: object) -> str:
    """``user_id`` if it is a safe account name (it also names a key file), else 400."""
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
        raise _bad("user_id must be 1-64 characters of A-Z a-z 0-9 _ . - (not starting "
                   "with . _ or -)")
    return user_id


def parse_account_request(body: dict[str, Any]) -> AccountRequest:
    """Validate a ``POST /sim/accounts`` body (raises ``SimError`` 400)."""
    unknown = set(body) - _FIELDS
    if unknown:
        raise _bad(f"unknown fields {sorted(unknown)}")
    user_id = check_user_id(body.get("user_id"))
    pem = body.get("public_key_pem")
    if not isinstance(pem, str):
        raise _bad("public_key_pem (string) is required")
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _bad("public_key_pem is not a PEM public key") from None
    if not isinstance(key, RSAPublicKey | Ed25519PublicKey):
        raise _bad("only RSA and Ed25519 keys can sign Kalshi requests")
    balance = body.get("balance_dollars")
    if balance is None:
        balance_micros = DEFAULT_BALANCE_MICROS
    else:
        if not isinstance(balance, str):
            raise _bad("balance_dollars must be a decimal string, e.g. \"1000.00\"")
        try:
            balance_micros = parse_dollars(balance)
        except MoneyError:
            raise _bad("balance_dollars is not a dollar amount") from None
        if balance_micros < 0:
            raise _bad("balance_dollars must be >= 0")
    return AccountRequest(user_id, key, balance_micros)


def open_account(exchange: SimExchange, user_id: str, public_key: Any, *, balance_micros: int,
                 key_id: str | None = None) -> RegisteredAccount:
    """Open ``user_id`` with ``balance_micros`` and register ``public_key`` under a key id."""
    if exchange.has_account(user_id):
        raise SimError(409, "conflict", f"account {user_id} already exists")
    exchange.register_account(user_id, balance_micros=balance_micros)
    key_id = key_id or str(uuid.uuid4())
    exchange.register_key(user_id, key_id, public_key)
    return RegisteredAccount(user_id, key_id, exchange.comm_id(user_id), balance_micros)
