"""Parity on the live service: a recorded simulator session, backtested with the same config and
the ``recorded`` auction, gives the live engine's every command and the same PnL to the
micro-dollar; another config stays on the recording where it acts the same and leaves it where
it does not (``backtests/tape.py``).

The session is the real service against the simulator over loopback sockets (as ``quoter
demo`` runs it), with the service's own hooks capturing every command the live engine returned.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from live_session import CapturingHooks, run_live_session

from backtests.engine import run_backtest
from backtests.exchange import ModelledVenue
from backtests.loop import BacktestLoop
from backtests.models import LatencyModel, RecordedAuction
from quoter.clock import VirtualClock
from quoter.config import load_config, parse_config
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketInfo, MarketStatus, Side
from quoter.kalshi.decode import decode
from quoter.recording.format import recording_files
from quoter.sim.exchange import ExchangeConfig

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
RUN_SECONDS = 8.0


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[CapturingHooks, list[Path]]:
    workdir = tmp_path_factory.mktemp("parity")
    # A 1 s execution timer (Kalshi: 15 s, HVM 1 s) so confirmed quotes fill within the run.
    _, hooks = asyncio.run(run_live_session(
        workdir, seed=11, seconds=RUN_SECONDS,
        exchange=ExchangeConfig(id_seed=11, execution_timer_ms=1_000)))
    files = recording_files(workdir / "rec")
    assert files, "the service wrote no recording"
    return hooks, files


def _wire(commands: list[cmd.Command]) -> list[cmd.Command]:
    return [c for c in commands if isinstance(c, cmd.SubmitQuote | cmd.ConfirmQuote
                                              | cmd.CancelQuote)]


def _backtest(files: list[Path], text: str | None = None) -> BacktestLoop:
    cfg = load_config(DEMO) if text is None else parse_config(text, str(DEMO),
                                                                 base_dir=DEMO.parent)
    return run_backtest(files, cfg, auction=RecordedAuction(), latency=LatencyModel(seed=1))


def test_a_service_session_backtests_to_the_same_commands_and_pnl(
    session: tuple[CapturingHooks, list[Path]],
) -> None:
    hooks, files = session
    kinds = Counter(type(c).__name__ for c in hooks.live)
    # The session exercised quoting, requoting or pulling, and confirms: equality means much.
    assert kinds["SubmitQuote"] >= 5, kinds
    assert kinds["ConfirmQuote"] >= 1, kinds
    assert kinds["CancelQuote"] >= 1, kinds
    bt = _backtest(files)
    # Byte-equal, in order: quote submits (prices, strategy, fair), confirms (exchange quote
    # ids and deadlines), cancels (ids, reasons); then every other command too.
    assert _wire(bt.commands) == _wire(hooks.live)
    assert bt.commands == hooks.live
    # The same fills, booked into the same positions and PnL, to the micro-dollar.
    assert hooks.fills, "no fill in the session: nothing to compare PnL on"
    assert bt.metrics.summary["fills"] == len(hooks.fills)
    assert bt.metrics.summary["contracts_centi"] == sum(f.count_centi for f in hooks.fills)
    assert bt.engine.ledger.snapshot() == hooks.engine.ledger.snapshot()
    assert bt.engine.ledger.realized_pnl_micros() == hooks.engine.ledger.realized_pnl_micros()
    cash = -sum(f.yes_price_micros * f.count_centi // 100 if f.book_side.value == "bid"
                else (1_000_000 - f.yes_price_micros) * f.count_centi // 100
                for f in hooks.fills) - sum(f.fee_micros for f in hooks.fills)
    assert bt.metrics.summary["pnl_realized_micros"] == cash  # nothing settled in 8 s
    assert bt.answers is not None
    assert bt.answers.divergences == []


def test_another_config_leaves_the_recording_only_where_it_acts_differently(
    session: tuple[CapturingHooks, list[Path]],
) -> None:
    hooks, files = session
    text = DEMO.read_text(encoding="utf-8")
    assert 'edge_dollars: "0.008"' in text
    bt = _backtest(files, text.replace('edge_dollars: "0.008"', 'edge_dollars: "0.030"'))
    assert bt.answers is not None
    diverged = {name for kind, name in bt.answers.diverged if kind == "rfq"}
    assert diverged  # the singles quote other prices: those RFQs are the model's now
    assert bt.metrics.engine_errors == 0
    assert bt.metrics.summary["quotes_placed"] > 0
    # The RFQs whose commands did not change are still answered from the recording.
    live_by_rfq: dict[str, list[cmd.Command]] = {}
    for c in _wire(hooks.live):
        live_by_rfq.setdefault(c.rfq_id, []).append(c)
    ours_by_rfq: dict[str, list[cmd.Command]] = {}
    for c in _wire(bt.commands):
        ours_by_rfq.setdefault(c.rfq_id, []).append(c)
    for rfq, commands in ours_by_rfq.items():
        if rfq not in diverged:
            assert commands == live_by_rfq.get(rfq, []), rfq


def test_the_modelled_exchange_adopts_a_recorded_quote() -> None:
    """A thread that leaves the recording after an accept: the recorded quote is created,
    accepted and confirmable on the modelled exchange under the id the engine knows."""
    clock = VirtualClock(0, 0)
    sent: list[bytes] = []
    info = MarketInfo("KXT-26-M1", "KXT-26", "KXT", MarketStatus.ACTIVE,
                      grid_for_structure("linear_cent"))
    venue = ModelledVenue(clock, RecordedAuction(), markets={info.ticker: info}, books={},
                          recorded_quotes={}, mirror={}, deliver=sent.append,
                          at=lambda _at, fn: fn())
    venue.observe(ev.RfqReceived("rec-rfq", info.ticker, 0, creator_id="who",
                                 contracts_centi=1000), 0)
    submit = cmd.SubmitQuote("rec-rfq", info.ticker, 400_000, 500_000, "s")
    venue.adopt("rec-rfq", "rec-quote", submit, Side.YES, confirmed=False)
    assert sent == []  # the engine saw the recorded quote_created and accept already
    venue.confirm("rec-rfq", "rec-quote")
    while (due := venue.exchange.next_deadline_ns()) is not None and due <= 60_000_000_000:
        clock.advance_to(due)  # the exchange's execution delay, in virtual time
        venue.exchange.advance(due)
    events = [e for data in sent for e in decode(data, 0)[1]]
    executed = [e for e in events if isinstance(e, ev.QuoteExecuted)]
    fills = [e for e in events if isinstance(e, ev.FillReceived)]
    assert [(e.rfq_id, e.quote_id) for e in executed] == [("rec-rfq", "rec-quote")]
    assert sum(f.count_centi for f in fills) == 1000
    assert venue.quotes_adopted == 1
