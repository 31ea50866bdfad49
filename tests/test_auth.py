"""Request signing: verified with the public key (RSA-PSS is randomized: never compare bytes)."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from quoter.errors import AuthError
from quoter.kalshi.auth import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KalshiAuth,
    Signer,
    load_private_key,
    signing_path,
    verify_signature,
    ws_headers,
)

KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _pem(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, fmt: serialization.PrivateFormat
) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def test_signing_path_strips_query_and_host_and_keeps_prefix() -> None:
    assert (
        signing_path("/trade-api/v2/portfolio/orders?limit=5") == "/trade-api/v2/portfolio/orders"
    )
    assert (
        signing_path("https://external-api.kalshi.com/trade-api/v2/portfolio/balance?x=1#f")
        == "/trade-api/v2/portfolio/balance"
    )
    # A bare API path gets the prefix: the signature always covers it (§1.2 common bug).
    assert signing_path("/portfolio/balance") == "/trade-api/v2/portfolio/balance"
    assert signing_path("/trade-api/ws/v2") == "/trade-api/ws/v2"


def test_headers_sign_the_exact_presign_string(rsa_key: rsa.RSAPrivateKey) -> None:
    signer = Signer(KEY_ID, rsa_key)
    h = signer.headers("get", "/trade-api/v2/portfolio/orders?limit=5", 1703123456789)
    assert h[HEADER_KEY] == KEY_ID
    assert h[HEADER_TIMESTAMP] == "1703123456789"
    pub = rsa_key.public_key()
    expected = "1703123456789GET/trade-api/v2/portfolio/orders"
    assert verify_signature(pub, expected, h[HEADER_SIGNATURE])
    # The query, a lower-case method or a missing prefix would each be a different message.
    assert not verify_signature(pub, expected + "?limit=5", h[HEADER_SIGNATURE])
    assert not verify_signature(pub, "1703123456789GET/portfolio/orders", h[HEADER_SIGNATURE])
    assert not verify_signature(
        pub, "1703123456790GET/trade-api/v2/portfolio/orders", h[HEADER_SIGNATURE]
    )


def test_rsa_signature_is_pss_with_digest_length_salt(rsa_key: rsa.RSAPrivateKey) -> None:
    signer = Signer(KEY_ID, rsa_key)
    sig = signer.sign("hello")
    raw = base64.b64decode(sig, validate=True)
    assert len(raw) == 256
    # Randomized: two signatures of the same text differ, both verify.
    assert signer.sign("hello") != sig
    assert verify_signature(rsa_key.public_key(), "hello", signer.sign("hello"))
    # Recover the salt length from the encoded message (RFC 8017 §9.1.2) to pin salt = 32.
    pub = rsa_key.public_key().public_numbers()
    em = pow(int.from_bytes(raw, "big"), pub.e, pub.n).to_bytes(256, "big")
    assert em[-1] == 0xBC
    from cryptography.hazmat.primitives import hashes

    masked_db, h = em[: 256 - 33], em[256 - 33 : -1]
    mask = b""
    counter = 0
    while len(mask) < len(masked_db):
        d = hashes.Hash(hashes.SHA256())
        d.update(h + counter.to_bytes(4, "big"))
        mask += d.finalize()
        counter += 1
    db = bytearray(a ^ b for a, b in zip(masked_db, mask, strict=False))
    db[0] &= 0x7F
    salt_len = len(db) - db.index(1) - 1
    assert salt_len == 32


def test_ed25519_signs_plainly(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    path = _write(tmp_path / "ed.pem", _pem(key, serialization.PrivateFormat.PKCS8))
    signer = Signer.from_pem_file(KEY_ID, path)
    assert signer.algorithm == "ed25519"
    h = signer.headers("POST", "/trade-api/v2/communications/quotes", 5)
    assert verify_signature(
        key.public_key(), "5POST/trade-api/v2/communications/quotes", h[HEADER_SIGNATURE]
    )
    # Ed25519 is deterministic.
    assert signer.sign("x") == signer.sign("x")
    key.public_key().verify(base64.b64decode(signer.sign("x")), b"x")


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
def test_loads_rsa_pkcs1_and_pkcs8(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat
) -> None:
    path = _write(tmp_path / "k.pem", _pem(rsa_key, fmt))
    loaded = load_private_key(path)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == rsa_key.private_numbers()


def test_refuses_group_readable_key(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    path = _write(tmp_path / "k.pem", _pem(rsa_key, serialization.PrivateFormat.PKCS8), 0o644)
    with pytest.raises(AuthError) as info:
        load_private_key(path)
    assert str(info.value) == (
        f"private key file {path} is readable by group/others (mode 0644); run chmod 600 {path}"
    )
    path.chmod(0o640)
    with pytest.raises(AuthError, match="mode 0640"):
        load_private_key(path)


def test_bad_key_files_never_echo_key_material(tmp_path: Path) -> None:
    junk = b"-----BEGIN PRIVATE KEY-----\nSECRETSECRETSECRET\n-----END PRIVATE KEY-----\n"
    path = _write(tmp_path / "bad.pem", junk)
    with pytest.raises(AuthError) as info:
        load_private_key(path)
    assert "SECRET" not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    with pytest.raises(AuthError, match="does not exist"):
        load_private_key(tmp_path / "missing.pem")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    path = _write(
        tmp_path / "ec.pem",
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    with pytest.raises(AuthError, match="only RSA and Ed25519"):
        load_private_key(path)


def test_repr_hides_key(rsa_key: rsa.RSAPrivateKey) -> None:
    signer = Signer(KEY_ID, rsa_key)
    text = repr(signer) + str(signer) + repr(KalshiAuth(signer, lambda: 0))
    assert "a952bcbe" in text
    assert KEY_ID not in text
    assert "BEGIN" not in text
    assert str(rsa_key.private_numbers().d)[:12] not in text
    with pytest.raises(TypeError):
        pickle.dumps(signer)


def test_ws_headers_sign_the_ws_path(rsa_key: rsa.RSAPrivateKey) -> None:
    h = ws_headers(Signer(KEY_ID, rsa_key), 1700000000000)
    assert verify_signature(
        rsa_key.public_key(), "1700000000000GET/trade-api/ws/v2", h[HEADER_SIGNATURE]
    )


def test_verify_rejects_garbage(rsa_key: rsa.RSAPrivateKey) -> None:
    assert not verify_signature(rsa_key.public_key(), "m", "not base64!!")
    assert not verify_signature(rsa_key.public_key(), "m", base64.b64encode(b"\0" * 256).decode())
    # A private key is accepted for convenience (its public half is used).
    assert verify_signature(rsa_key, "m", Signer(KEY_ID, rsa_key).sign("m"))


async def test_httpx_auth_signs_full_wire_path_with_injected_clock(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    auth = KalshiAuth(Signer(KEY_ID, rsa_key), wall_ms=lambda: 1234)
    async with httpx.AsyncClient(
        base_url="https://demo.example/trade-api/v2",
        transport=httpx.MockTransport(handler),
        auth=auth,
    ) as client:
        await client.get("/communications/quotes", params={"status": "open", "limit": 5})
    (req,) = seen
    assert req.headers[HEADER_TIMESTAMP] == "1234"
    assert req.url.query == b"status=open&limit=5"
    assert verify_signature(
        rsa_key.public_key(),
        "1234GET/trade-api/v2/communications/quotes",
        req.headers[HEADER_SIGNATURE],
    )
