"""The proof on the simulator: a recorded world run, backtested with the same config and the
recorded answers, reproduces the live run exactly; a counterfactual with a wider edge fills
less, as the auction model predicts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from backtests.engine import BacktestLoop, run_backtest
from backtests.exchange import ModelledVenue
from backtests.models import BookAuction, LatencyModel, RecordedAuction
from backtests.world import run_world
from quoter.config import load_config, parse_config
from quoter.domain import commands as cmd

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
SECONDS = 120.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestLoop, Path]:
    rec = tmp_path_factory.mktemp("world") / "world.jsonl.gz"
    loop = run_world(load_config(DEMO), seed=3, seconds=SECONDS, record=rec,
                     latency=LatencyModel(seed=1), config_text=DEMO.read_text(),
                     config_path=str(DEMO))
    return loop, rec


def _backtest(rec: Path, text: str | None = None, *, fallback: bool = False) -> BacktestLoop:
    cfg = load_config(DEMO) if text is None else parse_config(text, str(DEMO),
                                                                 base_dir=DEMO.parent)
    auction = RecordedAuction(fallback=BookAuction(seed=5)) if fallback else RecordedAuction()
    return run_backtest([rec], cfg, auction=auction, latency=LatencyModel(seed=1))


def _wire(commands: list[cmd.Command]) -> list[cmd.Command]:
    return [c for c in commands if isinstance(c, cmd.SubmitQuote | cmd.ConfirmQuote
                                              | cmd.CancelQuote)]


def test_the_backtest_reproduces_the_live_run(live: tuple[BacktestLoop, Path]) -> None:
    """Parity: the same config and ``recorded`` answers give the live run's every command,
    fill and micro-dollar."""
    loop, rec = live
    actual = loop.metrics.summary
    assert actual["fills"] > 20  # the world traded with us: there is something to reproduce
    bt = _backtest(rec)
    kinds = Counter(type(c).__name__ for c in _wire(loop.commands))
    assert kinds["SubmitQuote"] > 100
    assert kinds["ConfirmQuote"] > 20
    assert kinds["CancelQuote"] > 5
    # Byte-equal: quote ids (the recorded answers give the engine the recorded ids), prices,
    # deadlines, reasons, timers and decisions, in order.
    assert _wire(bt.commands) == _wire(loop.commands)
    assert bt.commands == loop.commands
    predicted = bt.metrics.summary
    assert {k: v for k, v in predicted.items() if k != "auction"} == {
        k: v for k, v in actual.items() if k != "auction"}
    assert predicted["pnl_realized_micros"] == actual["pnl_realized_micros"]
    assert predicted["pnl_marked_micros"] == actual["pnl_marked_micros"]
    assert bt.engine.ledger.snapshot() == loop.engine.ledger.snapshot()
    # Nothing left the recording: every step was the recorded one.
    assert bt.answers is not None
    assert bt.answers.divergences == []
    assert bt.answers.steps_modelled == 0
    assert bt.answers.steps_dropped == 0


def test_the_parity_check_is_sensitive(live: tuple[BacktestLoop, Path]) -> None:
    """Without the recorded answers (frames at their receive times, the modelled exchange
    answering everything) the same config does not reproduce the run: the parity above is the
    recorded answers' doing, not a property of any backtest."""
    loop, rec = live
    modelled = run_backtest([rec], load_config(DEMO), auction=RecordedAuction(),
                            latency=LatencyModel(seed=1), answers="model")
    assert _wire(modelled.commands) != _wire(loop.commands)


def test_a_wider_edge_fills_less(live: tuple[BacktestLoop, Path]) -> None:
    _, rec = live
    base = _backtest(rec, fallback=True).metrics.summary
    text = DEMO.read_text().replace('edge_dollars: "0.008"', 'edge_dollars: "0.040"')
    assert text != DEMO.read_text()
    wide = _backtest(rec, text, fallback=True).metrics.summary
    assert wide["quotes_placed"] > 0
    assert wide["fills"] < base["fills"]
    assert wide["win_rate"] < base["win_rate"]


def test_same_inputs_same_summary(live: tuple[BacktestLoop, Path]) -> None:
    _, rec = live
    assert _backtest(rec).metrics.summary == _backtest(rec).metrics.summary


def test_a_last_look_change_leaves_the_recording_at_that_confirm_only(
    live: tuple[BacktestLoop, Path],
) -> None:
    """A stricter last look on combos: the quotes are the same, so every RFQ stays on the
    recording until an accept the new rule declines; that RFQ's accepted quote is adopted by
    the modelled exchange and is not confirmed, and nothing else changes."""
    loop, rec = live
    text = DEMO.read_text().replace('last_look_min_edge_dollars: "0.005"',
                                    'last_look_min_edge_dollars: "0.090"')
    assert text != DEMO.read_text()
    bt = _backtest(rec, text)
    assert bt.answers is not None
    diverged = [name for kind, name in bt.answers.diverged if kind == "rfq"]
    assert len(diverged) == 1
    assert isinstance(bt.venue, ModelledVenue)
    assert bt.venue.quotes_adopted == 1
    [rfq] = diverged
    live_confirms = [c for c in loop.commands if isinstance(c, cmd.ConfirmQuote)]
    assert rfq in {c.rfq_id for c in live_confirms}
    ours = _wire(bt.commands)
    assert [c for c in ours if c.rfq_id != rfq] == [
        c for c in _wire(loop.commands) if c.rfq_id != rfq]
    assert not [c for c in ours if isinstance(c, cmd.ConfirmQuote) and c.rfq_id == rfq]
    actual, predicted = loop.metrics.summary, bt.metrics.summary
    assert predicted["decisions"]["confirmed"] == actual["decisions"]["confirmed"] - 1
    assert predicted["fills"] < actual["fills"]
    assert predicted["engine_errors"] == 0


def _without_series_c() -> str:
    """demo.yaml with the singles routed on series KXSIMA and KXSIMB only (not KXSIMC)."""
    text = DEMO.read_text()
    assert text.count('series: ["KXSIM*"]') == 1
    return text.replace('series: ["KXSIM*"]', 'series: ["KXSIMA*", "KXSIMB*"]')


def _series_c_quotes(commands: list[cmd.Command]) -> list[cmd.Command]:
    return [c for c in commands
            if isinstance(c, cmd.SubmitQuote) and c.market_ticker.startswith("KXSIMC-")]


def test_rfqs_the_live_prefilter_dropped_reach_a_config_that_routes_them(
    tmp_path: Path,
) -> None:
    """Recorded without series KXSIMC, its RFQs were pre-filtered live (no engine step): a
    backtest of a config that routes them gets those frames at their receive times."""
    text = _without_series_c()
    rec = tmp_path / "ab.jsonl.gz"
    live = run_world(parse_config(text, str(DEMO), base_dir=DEMO.parent), seed=3,
                     seconds=40.0, record=rec, latency=LatencyModel(seed=1), config_text=text,
                     config_path=str(DEMO))
    assert live.metrics.prefiltered > 0  # the KXSIMC RFQs
    assert not _series_c_quotes(live.commands)
    wider = _backtest(rec)
    assert wider.answers is not None
    assert wider.answers.frames_added == live.metrics.prefiltered
    assert wider.metrics.prefiltered == 0
    assert _series_c_quotes(wider.commands)
    # And its own config reproduces it exactly, the pre-filtered frames included.
    own = _backtest(rec, text)
    assert own.answers is not None
    assert own.answers.divergences == []
    assert own.commands == live.commands
    assert own.metrics.summary["prefiltered"] == live.metrics.summary["prefiltered"]
    assert own.metrics.summary["frames"] == live.metrics.summary["frames"]


def test_a_narrower_config_drops_what_the_live_run_routed(
    live: tuple[BacktestLoop, Path],
) -> None:
    loop, rec = live
    narrower = _backtest(rec, _without_series_c())
    assert narrower.metrics.prefiltered > 0
    assert _series_c_quotes(loop.commands)
    assert not _series_c_quotes(narrower.commands)
    assert narrower.metrics.engine_errors == 0
