"""Synthetic requesters' intents: the side they want, and the informed share who know the mid
ahead and so trade exactly when our price is wrong (adverse markouts)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from backtests.cli import EXIT_USAGE, main
from backtests.models import AuctionContext, BookAuction, SyntheticAuction
from backtests.synthetic import (
    Intent,
    SyntheticRfqs,
    _LookAhead,
    intents_path,
    read_intents,
    write_synthetic_rfqs,
)
from quoter.domain.types import Side
from quoter.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
CAPTURE = ROOT / "backtests" / "data" / "market-data.jsonl.gz"


def _backtest(out: Path, *extra: str) -> dict[str, object]:
    assert main(["run", "--config", str(DEMO), "--frames", str(CAPTURE), "--out", str(out),
                 "--synthetic-rfqs", "6", "--seed", "2", "--no-progress", *extra]) == 0
    metrics: dict[str, object] = json.loads((out / "summary.json").read_text())["metrics"]
    return metrics


def _sides(out: Path) -> set[str]:
    with (out / "fills.csv").open() as f:
        return {row["side"] for row in csv.DictReader(f)}


def test_informed_requesters_show_up_as_adverse_markouts(tmp_path: Path) -> None:
    plain = _backtest(tmp_path / "plain")
    informed = _backtest(tmp_path / "informed", "--informed-share", "1")
    plain_60s = plain["markouts_micros"]["60s"]  # type: ignore[index]
    informed_60s = informed["markouts_micros"]["60s"]  # type: ignore[index]
    assert plain["fills"]
    assert informed["fills"]
    # Requesters who know the mid a minute ahead take only the side that is about to lose us
    # money: the fills' 60 s markouts go negative and below the uninformed run's.
    assert informed_60s < 0
    assert informed_60s < plain_60s
    # The arrivals did not change, only what the requesters did with our quotes.
    a = gzip.decompress((tmp_path / "plain" / "synthetic-rfqs.jsonl.gz").read_bytes())
    b = gzip.decompress((tmp_path / "informed" / "synthetic-rfqs.jsonl.gz").read_bytes())
    assert a == b
    intents = read_intents(intents_path(tmp_path / "informed" / "synthetic-rfqs.jsonl.gz"))
    assert intents
    assert all(i.informed for i in intents.values())
    assert any(i.future_mid_micros is not None for i in intents.values())


@pytest.mark.parametrize(("yes_share", "we_buy"), [("1", "no"), ("0", "yes")])
def test_the_yes_share_decides_which_side_uninformed_requesters_take(
        tmp_path: Path, yes_share: str, we_buy: str) -> None:
    # A requester who wants YES hits our NO bid: we buy NO (and the other way round).
    assert _backtest(tmp_path / "r", "--yes-share", yes_share)["fills"]
    assert _sides(tmp_path / "r") == {we_buy}


def test_intents_are_seeded(tmp_path: Path) -> None:
    spec = SyntheticRfqs(6.0, seed=9, informed_share=0.5, informed_horizon_s=30)
    for name in ("a", "b"):
        assert write_synthetic_rfqs([CAPTURE], tmp_path / f"{name}.jsonl.gz", spec) > 0
    a = intents_path(tmp_path / "a.jsonl.gz").read_bytes()
    assert a == intents_path(tmp_path / "b.jsonl.gz").read_bytes()
    informed = sum(i.informed for i in read_intents(intents_path(tmp_path / "a.jsonl.gz"))
                   .values())
    total = len(a.splitlines())
    assert 0 < informed < total  # about half, not all or none


def _snapshot(yes: str, yes_ask: str) -> dict[str, object]:
    # Books arrive YES-priced (we subscribe with use_yes_price): the "no" levels are YES asks.
    return {"type": "orderbook_snapshot", "sid": 2, "seq": 1,
            "msg": {"market_ticker": "M", "market_id": "M", "yes_dollars_fp": [[yes, "10.00"]],
                    "no_dollars_fp": [[yes_ask, "10.00"]]}}


def test_the_look_ahead_reads_the_mid_as_of_a_later_time(tmp_path: Path) -> None:
    capture = tmp_path / "books.jsonl"
    capture.write_text("\n".join(json.dumps({"ts_recv_ns": t, "frame": frame}) for t, frame in (
        (1_000_000_000, _snapshot("0.4000", "0.5000")),
        (30_000_000_000, _snapshot("0.6000", "0.7000")),
    )) + "\n")
    ahead = _LookAhead([capture])
    assert ahead.mid_at("M", 0) is None  # nothing received yet
    assert ahead.mid_at("M", 10_000_000_000) == 450_000
    assert ahead.mid_at("M", 40_000_000_000) == 650_000
    assert ahead.mid_at("OTHER", 40_000_000_000) is None


def _ctx(yes_bid: int, no_bid: int) -> AuctionContext:
    return AuctionContext("r1", "M", yes_bid, no_bid, 5_000, 450_000, 440_000, 540_000, None)


def test_an_informed_requester_takes_the_side_that_is_cheap_against_the_future_mid() -> None:
    book = BookAuction(accept_delay_ns=7)
    rising = SyntheticAuction({"r1": Intent("r1", wants_yes=False, informed=True,
                                            future_mid_micros=600_000)}, book=book)
    # We sell YES at $1 - 0.45 = 0.55; it will be worth 0.60: the requester buys YES.
    assert rising.decide(_ctx(400_000, 450_000)) == (Side.NO, 5_007)
    falling = SyntheticAuction({"r1": Intent("r1", wants_yes=True, informed=True,
                                             future_mid_micros=300_000)}, book=book)
    # We buy YES at 0.40; it will be worth 0.30: the requester sells us YES (buys NO).
    assert falling.decide(_ctx(400_000, 450_000)) == (Side.YES, 5_007)
    flat = SyntheticAuction({"r1": Intent("r1", wants_yes=True, informed=True,
                                          future_mid_micros=480_000)}, book=book)
    # 0.40 bid / 0.55 ask around a future 0.48: neither side gains, no trade.
    assert flat.decide(_ctx(400_000, 450_000)) is None
    assert rising.informed_accepts == falling.informed_accepts == 1
    assert flat.informed_accepts == 0


def test_an_uninformed_intent_wants_its_side_and_an_unknown_rfq_falls_back() -> None:
    book = BookAuction(accept_delay_ns=7)
    model = SyntheticAuction({"r1": Intent("r1", wants_yes=True)}, book=book,
                             fallback=BookAuction(accept_delay_ns=9))
    # Wants YES: our NO bid 0.55 beats the book's best NO bid 0.54 -> it takes our NO side.
    assert model.decide(_ctx(400_000, 550_000)) == (Side.NO, 5_007)
    assert model.decide(_ctx(400_000, 540_000)) is None  # no better than the book
    other = AuctionContext("r2", "M", 450_000, 550_000, 5_000, 450_000, 440_000, 540_000, None)
    decided = model.decide(other)
    assert decided is not None
    assert decided[1] == 5_009


def test_a_malformed_intents_file_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.intents.jsonl"
    good = {"rfq_id": "a", "wants_yes": True, "informed": False, "future_mid_micros": None}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "future_mid_micros": 2e6})
                    + "\n")
    with pytest.raises(ConfigError, match=r"x\.intents\.jsonl:2: not a synthetic intent"):
        read_intents(path)


def test_shares_out_of_range_are_usage_errors(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--config", str(DEMO), "--frames", str(CAPTURE), "--out",
              str(tmp_path / "o"), "--synthetic-rfqs", "6", "--informed-share", "1.5"])
    assert exc.value.code == EXIT_USAGE
    assert "a share is in [0, 1]" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="informed_horizon_s"):
        SyntheticRfqs(6.0, informed_horizon_s=0)
