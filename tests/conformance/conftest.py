"""The conformance suite's simulator: served by uvicorn on 127.0.0.1 (a free port) with a
maker and a requester account, each with its own RSA key (every client here signs RSA-PSS),
a single market with resting liquidity, and a combo in a multivariate collection."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from quoter.clock import LiveClock
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import ComboLeg, Side
from quoter.sim.exchange import ExchangeConfig, SimExchange, SimMarket, SimSeries
from quoter.sim.server import serve_sim

T1 = "KXCONF-26JAN01-T1"
T2 = "KXCONF-26JAN02-T1"
COMBO = "KXMVECONF-S1"
COLLECTION = "KXMVECONF-R"
USERS = ("maker", "req", "lp")


@dataclass
class LiveSim:
    """A simulator being served, with the accounts' keys."""

    url: str
    ws_url: str
    exchange: SimExchange
    keys: dict[str, rsa.RSAPrivateKey]
    key_files: dict[str, Path]

    def pem(self, user: str) -> str:
        """The user's private key as PKCS#8 PEM text."""
        return self.key_files[user].read_text()

    def key_id(self, user: str) -> str:
        return f"key-{user}"


@pytest.fixture(scope="session")
def rsa_keys() -> dict[str, rsa.RSAPrivateKey]:
    return {u: rsa.generate_private_key(public_exponent=65537, key_size=2048) for u in USERS}


def list_markets(ex: SimExchange) -> None:
    """One series with two single markets (resting liquidity on T1) and a combo over both."""
    ex.add_series(SimSeries("KXCONF", title="Conformance", fees=FeeSchedule(FeeType.QUADRATIC)))
    for t, e in ((T1, "KXCONF-26JAN01"), (T2, "KXCONF-26JAN02")):
        ex.add_market(SimMarket(t, e, "KXCONF", f"market {t}", grid_for_structure("linear_cent"),
                                fees=FeeSchedule(FeeType.QUADRATIC),
                                close_ts_ms=1_900_000_000_000))
    ex.add_market(SimMarket(COMBO, "KXMVECONF-E1", "KXMVECONF", "combo",
                            grid_for_structure("center_deci_edge_centi_cent"),
                            mve_collection_ticker=COLLECTION, exchange_index=1, is_hvm=True,
                            price_level_structure="center_deci_edge_centi_cent",
                            close_ts_ms=1_900_000_000_000,
                            legs=(ComboLeg("KXCONF-26JAN01", T1, Side.YES),
                                  ComboLeg("KXCONF-26JAN02", T2, Side.NO))))
    ex.place_order("lp", T1, Side.YES, 400_000, 1_000)
    ex.place_order("lp", T1, Side.NO, 550_000, 1_000)


@pytest.fixture
async def live_sim(rsa_keys: dict[str, rsa.RSAPrivateKey],
                   tmp_path: Path) -> AsyncIterator[LiveSim]:
    ex = SimExchange(LiveClock(), ExchangeConfig(execution_timer_ms=100,
                                                 hvm_execution_timer_ms=100))
    files: dict[str, Path] = {}
    for u, k in rsa_keys.items():
        ex.register_account(u, balance_micros=1_000_000_000)
        ex.register_key(u, f"key-{u}", k.public_key())
        path = files[u] = tmp_path / f"{u}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, k.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
        os.close(fd)
    list_markets(ex)
    async with serve_sim(ex, "127.0.0.1", 0) as sim:
        yield LiveSim(sim.url, sim.ws_url, ex, rsa_keys, files)


def sdk_models() -> Any:
    """The official SDK's models (the reference every body is checked against)."""
    return pytest.importorskip("kalshi_python_sync").models
