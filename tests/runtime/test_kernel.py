"""The runtime kernel: one error policy, open-quote tracking and the gates, with a real engine."""

from __future__ import annotations

from quoter.config import parse_config
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketInfo, MarketStatus, Side
from quoter.engine.engine import Engine
from quoter.errors import ExchangeRejectedError, QuoterError
from quoter.ports import MemoryConfirmJournal
from quoter.runtime.kernel import (
    EngineFailed,
    EngineStepped,
    Halted,
    InputTaken,
    Kernel,
    Post,
    engine_commands,
)

T = "KXTEST-26JAN01-A"
NOW = 1_000_000_000_000
MS = 1_000_000
CONFIG = """
version: 1
strategies:
  - name: main
    match: {series: [KXTEST]}
    pricer:
      name: fixed
      params: {edge_dollars: "0.02", fair_yes_dollars: {KXTEST-26JAN01-A: "0.50"}}
risk:  # room for several open 100-contract quotes (limits count every open quote)
  max_position_contracts_per_market: 1000
  max_position_contracts_per_event: 1000
  max_position_contracts_per_series: 1000
  max_position_contracts_total: 1000
"""
MARKET = MarketInfo(T, "KXTEST-26JAN01", "KXTEST", MarketStatus.ACTIVE,
                    grid_for_structure("linear_cent"))


def _kernel(**kw: object) -> Kernel:
    kernel = Kernel(Engine(parse_config(CONFIG)), **kw)  # type: ignore[arg-type]
    kernel.step(E.MarketLoaded(MARKET, NOW), NOW)
    kernel.step(E.BookSnapshotReceived(T, ((480_000, 10_000),), ((480_000, 10_000),), NOW), NOW)
    return kernel


def _quote(kernel: Kernel, rfq_id: str = "r1", quote_id: str = "q1") -> C.SubmitQuote:
    actions = kernel.step(E.RfqReceived(rfq_id, T, NOW, contracts_centi=10_000), NOW)
    (sub,) = [a for a in actions if isinstance(a, C.SubmitQuote)]
    kernel.step(kernel.submitted(sub, quote_id, NOW), NOW)
    return sub


class _Raising:
    """An engine that raises what it is given on RFQs (a real ``EngineLike``)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.seen: list[E.Event] = []

    def on_event(self, event: E.Event, now_ns: int) -> list[C.Command]:
        self.seen.append(event)
        if isinstance(event, E.RfqReceived):
            raise self.error
        return []


def test_a_step_records_its_input_then_the_engine_commands_then_applies_them() -> None:
    kernel = _kernel()
    actions = kernel.step(E.RfqReceived("r1", T, NOW, contracts_centi=10_000), NOW + 5)
    assert isinstance(actions[0], InputTaken)
    assert actions[0].now_ns == NOW + 5
    assert isinstance(actions[1], EngineStepped)
    commands = engine_commands(actions)
    assert [type(c) for c in commands][:1] == [C.SubmitQuote]
    # Every engine command is passed on to the shell, in the engine's order.
    assert tuple(actions[2:]) == commands
    assert kernel.stats.decisions == {"quoted": 1}


def test_bad_input_is_counted_and_yields_nothing_but_does_not_halt() -> None:
    kernel = Kernel(_Raising(QuoterError("bad rfq")))
    actions = kernel.step(E.RfqReceived("r1", T, NOW), NOW)
    assert engine_commands(actions) == ()
    (failed,) = [a for a in actions if isinstance(a, EngineFailed)]
    assert failed.bug is False
    assert kernel.stats.engine_errors == 1
    assert not kernel.halted


def test_an_engine_bug_halts_quoting_and_tells_the_engine_once() -> None:
    engine = _Raising(KeyError("bug"))
    kernel = Kernel(engine)
    actions = kernel.step(E.RfqReceived("r1", T, NOW), NOW)
    assert [type(a) for a in actions] == [InputTaken, EngineFailed, Halted, Post]
    assert kernel.halted
    assert kernel.halt_reason == "engine error on RfqReceived"
    (post,) = [a for a in actions if isinstance(a, Post)]
    assert post.event == E.KillSwitchChanged(True, "engine error on RfqReceived", NOW)
    # A second bug is counted but does not halt again; the engine keeps seeing events.
    again = kernel.step(E.RfqReceived("r2", T, NOW), NOW)
    assert not [a for a in again if isinstance(a, Halted | Post)]
    assert kernel.stats.engine_errors == 2
    kernel.step(post.event, NOW)
    assert isinstance(engine.seen[-1], E.KillSwitchChanged)


def test_open_quotes_follow_placement_replacement_accept_and_deletion() -> None:
    kernel = _kernel()
    _quote(kernel, "r1", "q1")
    _quote(kernel, "r2", "q2")
    assert kernel.open_quotes == {"q1": "r1", "q2": "r2"}
    kernel.step(E.QuotePlaced("r1", "q1b", NOW), NOW)  # a replacement: q1 is gone (§3.1)
    assert kernel.open_quotes == {"q2": "r2", "q1b": "r1"}
    kernel.step(E.QuoteAccepted("q1b", "r1", T, 0, 0, Side.YES, NOW), NOW)
    kernel.step(E.RfqDeleted("r2", T, NOW), NOW)
    assert kernel.open_quotes == {}


def test_the_engines_halt_cancels_every_open_quote_once() -> None:
    kernel = _kernel()
    _quote(kernel)
    actions = kernel.step(E.PositionReported(T, 500, NOW), NOW)  # a mismatch: the engine halts
    assert any(isinstance(a, C.Halt) for a in engine_commands(actions))
    halted = [a for a in actions if isinstance(a, Halted)]
    assert halted
    assert halted[0].by_engine
    assert kernel.halted
    cancels = [a for a in actions if isinstance(a, C.CancelQuote)]
    # The engine pulls q1 itself too; the kernel lets one cancel per quote out.
    assert [(c.rfq_id, c.quote_id) for c in cancels] == [("r1", "q1")]
    assert kernel.cancel_all() == []


def test_quotes_leave_only_when_not_halted_and_not_in_shadow() -> None:
    kernel = _kernel()
    sub = C.SubmitQuote("r1", T, 480_000, 480_000, "main")
    assert kernel.release_submit(sub, NOW).send
    kernel.halt("operator", NOW)
    refused = kernel.release_submit(sub, NOW)
    assert not refused.send
    assert refused.event == E.QuoteRejected("r1", "halted", "not sent", NOW)
    shadow = Kernel(Engine(parse_config(CONFIG)), send=False)
    assert shadow.release_submit(sub, NOW).event == E.QuoteRejected("r1", "shadow", "not sent",
                                                                     NOW)
    assert not shadow.release_cancel(C.CancelQuote("r1", "q1", "x")).send


def test_a_confirm_leaves_in_time_and_never_twice() -> None:
    journal = MemoryConfirmJournal()
    kernel = _kernel(journal=journal)
    confirm = C.ConfirmQuote("r1", "q1", NOW + 100 * MS)
    late = kernel.release_confirm(confirm, NOW + 100 * MS)
    assert late.event == E.ConfirmFailed("r1", "q1", "deadline", "confirm not sent",
                                         NOW + 100 * MS)
    assert kernel.release_confirm(confirm, NOW).send
    assert journal.claimed == {"q1": NOW}
    twice = kernel.release_confirm(confirm, NOW + 1)
    assert (twice.send, twice.event, twice.reason) == (False, None, "duplicate")
    assert (kernel.stats.confirms_sent, kernel.stats.confirms_skipped) == (1, 2)
    kernel.halt("operator", NOW)
    halted = kernel.release_confirm(C.ConfirmQuote("r2", "q2", NOW + 100 * MS), NOW)
    assert halted.reason == "halted"
    assert "q2" not in journal.claimed  # a refused confirm is not journaled


def test_a_404_on_cancel_forgets_the_quote_and_other_failures_allow_a_retry() -> None:
    kernel = _kernel()
    _quote(kernel, "r1", "q1")
    _quote(kernel, "r2", "q2")
    c1, c2 = kernel.cancel_all()
    assert isinstance(c1, C.CancelQuote)
    assert isinstance(c2, C.CancelQuote)
    gone = ExchangeRejectedError("DELETE", "/communications/rfqs/r1/quotes/q1", 404, "not_found",
                                 "quote q1 not found")
    event = kernel.cancel_failed(c1, gone, NOW)
    assert event == E.QuoteCancelFailed("r1", "q1", "not_found", str(gone), NOW)
    kernel.cancel_failed(c2, QuoterError("timeout"), NOW)
    assert kernel.open_quotes == {"q2": "r2"}
    assert [a.quote_id for a in kernel.cancel_all() if isinstance(a, C.CancelQuote)] == ["q2"]


def test_a_recorded_kill_switch_moves_the_gates_like_a_live_halt() -> None:
    kernel = _kernel()
    kernel.step(E.KillSwitchChanged(True, "operator", NOW), NOW)
    assert (kernel.halted, kernel.halt_reason) == (True, "operator")
    kernel.step(E.KillSwitchChanged(False, "resumed", NOW), NOW)
    assert (kernel.halted, kernel.halt_reason) == (False, "")
    # Live, halt() closes the gates at once, before the engine has seen the switch.
    actions = kernel.halt("operator", NOW)
    assert kernel.halted
    assert actions == [Halted("operator", by_engine=False, source="operator"),
                       Post(E.KillSwitchChanged(True, "operator", NOW))]
    assert kernel.resume(NOW) == [Post(E.KillSwitchChanged(False, "resumed", NOW))]
    assert not kernel.halted


def test_stop_quoting_halts_steps_the_engine_and_cancels_everything() -> None:
    kernel = _kernel()
    _quote(kernel)
    actions = kernel.stop_quoting(NOW)
    assert kernel.halted
    assert kernel.halt_reason == "shutdown"
    (taken,) = [a for a in actions if isinstance(a, InputTaken)]
    assert taken.event == E.KillSwitchChanged(True, "shutdown", NOW)
    assert [a.quote_id for a in actions if isinstance(a, C.CancelQuote)] == ["q1"]
