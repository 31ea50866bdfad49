"""Recorded runs reproduce decisions: replaying a service recording gives the same commands.

The end-to-end test runs the real service against the simulator over loopback sockets (as
``quoter demo`` does), captures every command the live engine returned (through the service's
own hooks), then replays the recording through a fresh engine and compares, command by command.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from live_session import CapturingHooks, run_live_session

from backtests.replay import (
    EngineInput,
    ReplayError,
    iter_engine_inputs,
    replay,
    replay_decisions,
    replay_kernel,
)
from quoter.config import config_hash, load_config, parse_config
from quoter.domain import commands as cmd
from quoter.domain import events as ev
from quoter.domain.fees import FeeSchedule, FeeType
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import BookSide, ComboLeg, MarketInfo, MarketStatus, Side
from quoter.recording.format import (
    EventLine,
    InLine,
    decode_event,
    encode_event,
    read_recordings,
    recording_files,
)
from quoter.runtime.kernel import Kernel, engine_commands
from quoter.service.app import Service
from quoter.service.store import Store

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
RUN_SECONDS = 6.0


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Service, CapturingHooks, Path]:
    workdir = tmp_path_factory.mktemp("replay")
    service, hooks = asyncio.run(run_live_session(workdir, seed=7, seconds=RUN_SECONDS))
    return service, hooks, workdir


def test_replay_reproduces_every_live_command(
    live_run: tuple[Service, CapturingHooks, Path],
) -> None:
    _service, hooks, workdir = live_run
    files = recording_files(workdir / "rec")
    assert files, "the service wrote no recording"
    report = replay(files)
    kinds = Counter(type(c).__name__ for c in hooks.live)
    # The run must have exercised the interesting paths, or equality proves little.
    assert kinds["SubmitQuote"] >= 3, kinds
    assert kinds["ConfirmQuote"] >= 1, kinds
    assert kinds["RecordDecision"] >= 3, kinds
    assert report.runs == 1
    assert report.steps == hooks.steps
    # The pricer clock was taped: every priced step carries its readings.
    perf_lines = [x for x in read_recordings(files) if isinstance(x, EventLine)
                  and x.kind == "perf"]
    assert perf_lines
    # Byte-identical decisions: prices, quote ids, deadlines, reasons, timers, in order.
    assert list(report.commands) == hooks.live
    # And the same decisions, with their reason codes, as the store persisted.
    with Store(workdir / "quoter.db") as store:
        stored = [(d.rfq_id, d.decision, d.reason) for d in store.decisions()]
    replayed = [(c.rfq_id, c.decision, c.reason) for c in report.commands
                if isinstance(c, cmd.RecordDecision)]
    assert replayed == stored


def test_the_service_and_the_replay_loop_drive_the_same_kernel(
    live_run: tuple[Service, CapturingHooks, Path],
) -> None:
    """One kernel type under both shells: its rules (kill switch, gates) hold in the replay too."""
    service, hooks, workdir = live_run
    files = recording_files(workdir / "rec")
    assert type(service.runtime.kernel) is Kernel
    kernels, commands = set(), []
    for kernel, _, actions in replay_kernel(files):
        assert type(kernel) is Kernel
        kernels.add(id(kernel))
        commands.extend(engine_commands(actions))
    assert len(kernels) == 1  # one recorded run, one kernel
    assert commands == hooks.live
    # The run ended halted (test_finished, then shutdown): the replayed kernel's gates agree.
    assert service.runtime.halted
    assert replay(files).halted


def test_a_replay_notices_a_changed_strategy(
    live_run: tuple[Service, CapturingHooks, Path],
) -> None:
    """The comparison is sensitive: a wider edge replays to other quote prices."""
    _, hooks, workdir = live_run
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    assert 'edge_dollars: "0.008"' in text
    wider = parse_config(text.replace('edge_dollars: "0.008"', 'edge_dollars: "0.030"'),
                         base_dir=DEMO_CONFIG.parent)
    replayed = replay_decisions(recording_files(workdir / "rec"), wider)
    live_quotes = [c for c in hooks.live if isinstance(c, cmd.SubmitQuote)]
    what_if = [c for c in replayed if isinstance(c, cmd.SubmitQuote)]
    assert what_if != live_quotes


def test_replay_rebuilds_non_frame_events_and_uses_recorded_frames(
    live_run: tuple[Service, CapturingHooks, Path],
) -> None:
    _, _, workdir = live_run
    files = recording_files(workdir / "rec")
    inputs = [i for i in iter_engine_inputs(files) if isinstance(i, EngineInput)]
    from_frames = [i for i in inputs if i.in_seq is not None]
    recorded = [i for i in inputs if i.in_seq is None]
    assert from_frames
    assert recorded
    types = Counter(type(i.event).__name__ for i in recorded)
    # Command results, market metadata and REST snapshots travel as recorded events.
    assert types["QuotePlaced"] >= 1, types
    assert types["MarketLoaded"] >= 1, types
    assert types["KillSwitchChanged"] >= 1
    # Frame-borne steps are never duplicated as events: frames stay raw `in` lines. (An RFQ
    # open before the service connected arrives by the REST backfill, a step of its own.)
    frame_rfqs = {(i.event.rfq_id, i.now_ns) for i in from_frames
                  if isinstance(i.event, ev.RfqReceived)}
    assert frame_rfqs
    assert not [i for i in recorded if isinstance(i.event, ev.RfqReceived)
                and (i.event.rfq_id, i.now_ns) in frame_rfqs]
    # Engine time never runs backwards within the run.
    times = [i.now_ns for i in inputs]
    assert times == sorted(times)


def test_recording_holds_no_secrets(live_run: tuple[Service, CapturingHooks, Path]) -> None:
    service, _, workdir = live_run
    key_id = service.settings.api_key_id
    assert key_id
    for path in recording_files(workdir / "rec"):
        for line in read_recordings([path]):
            if isinstance(line, EventLine):
                text = json.dumps(line.payload)
                assert key_id not in text
                assert "BEGIN" not in text


def test_a_missing_frame_is_reported(
    live_run: tuple[Service, CapturingHooks, Path], tmp_path: Path,
) -> None:
    _, _, workdir = live_run
    files = recording_files(workdir / "rec")
    # Rewrite the recording without its `in` lines: the steps now point at nothing.
    import gzip

    out = tmp_path / "rec-1.000-00000-1.jsonl.gz"
    with gzip.open(out, "wt", encoding="utf-8") as gz:
        for path in files:
            with gzip.open(path, "rt", encoding="utf-8") as src:
                for raw in src:
                    if not raw.startswith('{"k":"in"'):
                        gz.write(raw)
    assert not any(isinstance(line, InLine) for line in read_recordings([out]))
    with pytest.raises(ReplayError, match="frame #"):
        replay_decisions([out])


def test_a_different_config_is_a_what_if(
    live_run: tuple[Service, CapturingHooks, Path],
) -> None:
    service, hooks, workdir = live_run
    cfg = load_config(DEMO_CONFIG)
    assert config_hash(cfg) == config_hash(service.config)
    # The same config passed in explicitly gives the same answer.
    assert replay_decisions(recording_files(workdir / "rec"), cfg) == hooks.live


def test_event_codec_round_trips_market_metadata() -> None:
    market = MarketInfo(
        "KXMVE-1", "KXMVE-E", "KXMVE", MarketStatus.ACTIVE,
        grid_for_structure("tapered_deci_cent"), close_ts_ms=1_780_000_000_000,
        fees=FeeSchedule(FeeType.QUADRATIC_WITH_COMBO_MAKER_FEES, Fraction(3, 2)),
        is_hvm=True, mve_collection_ticker="KXMVEC",
        legs=(ComboLeg("E1", "M1", Side.YES), ComboLeg("E2", "M2", Side.NO)), exchange_index=3,
    )
    events: list[ev.Event] = [
        ev.MarketLoaded(market, 11),
        ev.BookSnapshotReceived("M1", ((480_000, 1_000),), ((500_000, 200),), 12, 4, 2, True),
        ev.QuoteRejected("r1", "409", "conflict", 13),
        ev.TimerFired("pending:r1", 14),
        ev.KillSwitchChanged(True, "operator", 15),
        ev.FillReceived("t1", "o1", "M1", Side.NO, BookSide.ASK, 520_000, 300, 4_400, False, 16,
                        post_position_centi=-300),
    ]
    for event in events:
        # Through JSON text, as in the file.
        back = decode_event(json.loads(json.dumps(encode_event(event))))
        assert back == event
        assert type(back) is type(event)
    decoded = decode_event(json.loads(json.dumps(encode_event(ev.MarketLoaded(market, 11)))))
    assert isinstance(decoded, ev.MarketLoaded)
    assert decoded.market.fees.multiplier == Fraction(3, 2)
    assert decoded.market.status is MarketStatus.ACTIVE
    with pytest.raises(ReplayError):
        decode_event({"type": "NoSuchEvent"})


def _synthetic(directory: Path, *, gap: bool = False) -> list[Path]:
    """A tiny service-shaped recording written with the real Recorder (no sim needed)."""
    from quoter.clock import ReplayClock
    from quoter.recording.recorder import Recorder

    cfg = load_config(DEMO_CONFIG)
    clock = ReplayClock(start_ns=1_000, wall_offset_ns=1_780_000_000_000_000_000)
    with Recorder(directory, clock=clock, threaded=False) as rec:
        rec.record_event("config", {"config_hash": config_hash(cfg), "path": str(DEMO_CONFIG),
                                    "text": DEMO_CONFIG.read_text(encoding="utf-8")})
        rec.record_event("engine_start", {
            "config_hash": config_hash(cfg), "wall_offset_ns": 1_780_000_000_000_000_000,
            "max_pending": 1000, "ledger": {"markets": {}, "provisional": {}, "event_of": {},
                                             "series_of": {}, "trade_ids": []},
        })
        frame = ('{"type":"rfq_created","sid":1,"msg":{"id":"rfq-1","creator_id":"c",'
                 '"market_ticker":"KXSIMA-26NOV01-M1","contracts_fp":"10.00",'
                 '"created_ts":"2026-11-24T07:00:00Z"}}')
        n = rec.record_in("comms-s0-1", frame, 2_000, clock.wall_ns())
        rec.record_step(2_500, n, 0)
        if gap:
            rec.record_event("gap", {"dropped_lines": 3})
        rec.record_event("step", {"now_ns": 3_000, "event": encode_event(
            ev.KillSwitchChanged(True, "operator", 2_900))})
    return recording_files(directory)


def test_synthetic_recording_replays_frames_and_events(tmp_path: Path) -> None:
    files = _synthetic(tmp_path)
    inputs = [i for i in iter_engine_inputs(files) if isinstance(i, EngineInput)]
    assert [type(i.event).__name__ for i in inputs] == ["RfqReceived", "KillSwitchChanged"]
    assert [i.now_ns for i in inputs] == [2_500, 3_000]
    assert inputs[0].in_seq == 0
    rfq = inputs[0].event
    assert isinstance(rfq, ev.RfqReceived)
    assert rfq.ts_recv_ns == 2_000  # decoded with the frame's recorded receive time
    commands = replay_decisions(files)
    # A new market: the engine parks the RFQ and asks for metadata; the halt is recorded.
    assert any(isinstance(c, cmd.FetchMarket) for c in commands)
    assert any(isinstance(c, cmd.RecordDecision) and c.decision == "halted" for c in commands)


def test_a_gap_stops_the_replay(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="lost 3 lines"):
        replay_decisions(_synthetic(tmp_path, gap=True))


def test_a_passive_capture_is_not_a_service_recording(tmp_path: Path) -> None:
    from quoter.clock import ReplayClock
    from quoter.recording.recorder import Recorder

    with Recorder(tmp_path, clock=ReplayClock(start_ns=0), threaded=False) as rec:
        n = rec.record_in("c", '{"type":"ok","id":1}', 1, 1)
        rec.record_step(2, n, 0)
    with pytest.raises(ReplayError, match="engine_start"):
        replay_decisions(recording_files(tmp_path))


def test_recorded_pricer_clock_reproduces_a_timeout(tmp_path: Path) -> None:
    """A live budget overrun (perf readings 5 ms apart) is a pricer_timeout in the replay too."""
    from quoter.clock import ReplayClock
    from quoter.recording.recorder import Recorder

    cfg = load_config(DEMO_CONFIG)
    wall0 = 1_780_000_000_000_000_000
    ticker = "KXSIMA-26NOV01-M1"
    market = MarketInfo(ticker, "KXSIMA-26NOV01", "KXSIMA", MarketStatus.ACTIVE,
                        grid_for_structure("linear_cent"),
                        close_ts_ms=wall0 // 1_000_000 + 86_400_000)
    with Recorder(tmp_path, clock=ReplayClock(start_ns=1_000, wall_offset_ns=wall0),
                  threaded=False) as rec:
        rec.record_event("config", {"config_hash": config_hash(cfg), "path": str(DEMO_CONFIG),
                                    "text": DEMO_CONFIG.read_text(encoding="utf-8")})
        rec.record_event("engine_start", {
            "config_hash": config_hash(cfg), "wall_offset_ns": wall0, "max_pending": 1000,
            "ledger": {"markets": {}, "provisional": {}, "event_of": {}, "series_of": {},
                       "trade_ids": []},
        })
        frame = ('{"type":"rfq_created","sid":1,"msg":{"id":"rfq-1","creator_id":"c",'
                 f'"market_ticker":"{ticker}","contracts_fp":"10.00",'
                 '"created_ts":"2026-11-24T07:00:00Z"}}')
        rec.record_step(2_500, rec.record_in("comms-s0-1", frame, 2_000, wall0), 0)
        rec.record_event("step", {"now_ns": 3_000,
                                  "event": encode_event(ev.MarketLoaded(market, 2_900))})
        book = ev.BookSnapshotReceived(ticker, ((470_000, 5_000),), ((490_000, 5_000),), 3_900,
                                       yes_priced=True)
        rec.record_event("step", {"now_ns": 4_000, "event": encode_event(book)})
        rec.record_perf([10, 5_000_010])  # the live pricing of that step took 5 ms
    files = recording_files(tmp_path)
    steps = [i for i in iter_engine_inputs(files) if isinstance(i, EngineInput)]
    assert [i.perf_readings for i in steps] == [(), (), (10, 5_000_010)]
    decided = [(c.decision, c.reason, c.detail) for c in replay_decisions(files)
               if isinstance(c, cmd.RecordDecision)]
    assert decided == [("not_quoted", "pricer_timeout", "5000 us > 2000 us")]
    # Without the recorded clock the budget never fires, and the same RFQ is quoted.
    loose = replay(files, budgets=False).commands
    assert [c.yes_bid_micros for c in loose if isinstance(c, cmd.SubmitQuote)] == [460_000]


def test_frames_link_to_steps_once_by_connection_time_and_content(tmp_path: Path) -> None:
    from quoter.clock import ReplayClock
    from quoter.kalshi.ws_types import RawFrame
    from quoter.recording.recorder import Recorder

    with Recorder(tmp_path, clock=ReplayClock(start_ns=0), threaded=False) as rec:
        a, b = b'{"type":"a"}', b'{"type":"b"}'
        rec.tap(RawFrame(a, 5, "c0"))
        rec.tap(RawFrame(b, 5, "c0"))  # same connection and time: told apart by content
        rec.tap(RawFrame(a, 5, "c1"))
        assert rec.frame_seq("c0", 5, b) == 1
        assert rec.frame_seq("c0", 5, a) == 0
        assert rec.frame_seq("c0", 5, a) is None  # linked once only
        assert rec.frame_seq("c1", 6, a) is None
        assert rec.frame_seq("c1", 5, a) == 2
    assert [x.n for x in read_recordings(recording_files(tmp_path)) if isinstance(x, InLine)] \
        == [0, 1, 2]


def test_config_reload_replays_from_the_recorded_text(tmp_path: Path) -> None:
    from quoter.clock import ReplayClock
    from quoter.recording.recorder import Recorder

    text = DEMO_CONFIG.read_text(encoding="utf-8")
    first = load_config(DEMO_CONFIG)
    text2 = text.replace('edge_dollars: "0.008"', 'edge_dollars: "0.020"')
    second = parse_config(text2, base_dir=DEMO_CONFIG.parent)
    assert config_hash(first) != config_hash(second)
    with Recorder(tmp_path, clock=ReplayClock(start_ns=0), threaded=False) as rec:
        for cfg, body in ((first, text), (second, text2)):
            rec.record_event("config", {"config_hash": config_hash(cfg),
                                        "path": str(DEMO_CONFIG), "text": body})
        rec.record_event("engine_start", {
            "config_hash": config_hash(first), "wall_offset_ns": 0, "max_pending": 1000,
            "ledger": {"markets": {}, "provisional": {}, "event_of": {}, "series_of": {},
                       "trade_ids": []},
        })
        step = encode_event(ev.ConfigReloaded(second, 10))
        assert step == {"type": "ConfigReloaded", "config_hash": config_hash(second),
                        "ts_recv_ns": 10}
        rec.record_event("step", {"now_ns": 11, "event": step})
    inputs = list(iter_engine_inputs(recording_files(tmp_path)))
    reloaded = inputs[-1]
    assert isinstance(reloaded, EngineInput)
    assert isinstance(reloaded.event, ev.ConfigReloaded)
    assert config_hash(reloaded.event.config) == config_hash(second)
    decisions = [c.decision for c in replay_decisions(recording_files(tmp_path))
                 if isinstance(c, cmd.RecordDecision)]
    assert decisions == ["config_applied"]
