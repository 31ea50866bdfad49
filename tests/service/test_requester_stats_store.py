"""Per-requester statistics survive a restart through the SQLite store, and the restored
profile prices the next RFQ of that requester (issue 9, item 2)."""

from __future__ import annotations

from pathlib import Path

from quoter.config import parse_config
from quoter.domain import commands as C
from quoter.domain import events as E
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import BookSide, MarketInfo, MarketStatus, Side
from quoter.engine.engine import Engine
from quoter.service.hooks import restore_requesters
from quoter.service.store import Store

T = "KXTEST-26JAN01-A"
MS = 1_000_000
CFG = parse_config("""
version: 1
strategies:
  - name: main
    match: {series: [KXTEST]}
    pricer: {name: book_mid, params: {edge_dollars: "0.02", max_spread_dollars: "0.50"}}
    overlays:
      - name: requester_profile
        params: {min_accepts: 1, widen_below_dollars: "0.00", max_widen_dollars: "0.05"}
requesters: {markout_horizons_ms: [1000]}
""")


class Run:
    """One engine, fed events at an explicit engine time."""

    def __init__(self) -> None:
        self.engine = Engine(CFG)
        self.now = 1_000_000_000_000
        self.send(E.MarketLoaded(MarketInfo(T, "KXTEST-26JAN01", "KXTEST", MarketStatus.ACTIVE,
                                            grid_for_structure("linear_cent")), self.now))
        self.book(480_000, 520_000)

    def send(self, event: E.Event) -> list[C.Command]:
        return self.engine.on_event(event, self.now)

    def book(self, bid: int, ask: int) -> None:
        self.send(E.BookSnapshotReceived(T, ((bid, 10_000),), ((1_000_000 - ask, 10_000),),
                                         self.now))

    def quote(self, rfq_id: str, creator: str) -> C.SubmitQuote:
        (sub,) = [c for c in self.send(E.RfqReceived(rfq_id, T, self.now, creator_id=creator,
                                                     contracts_centi=1_000))
                  if isinstance(c, C.SubmitQuote)]
        return sub


def picked_off(run: Run) -> None:
    """``req`` takes our YES at 0.48 and the mid drops to 0.44 a second later."""
    sub = run.quote("r1", "req")
    run.send(E.QuotePlaced("r1", "q1", run.now))
    run.send(E.QuoteAccepted("q1", "r1", T, 0, 0, Side.YES, run.now,
                             contracts_accepted_centi=1_000))
    run.send(E.QuoteExecuted("q1", "r1", T, "o1", run.now))
    run.send(E.FillReceived("t1", "o1", T, Side.YES, BookSide.BID, sub.yes_bid_micros, 1_000,
                            0, False, run.now))
    run.now += 1000 * MS
    run.book(420_000, 460_000)
    run.send(E.TimerFired("markout:t1:1000", run.now))
    run.book(480_000, 520_000)


def test_store_round_trip_and_upsert(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    run = Run()
    picked_off(run)
    with Store(db) as store:
        store.save_requester_stats(run.engine.requesters.take_dirty(), 1)
        assert run.engine.requesters.take_dirty() == {}  # nothing changed since
        store.save_requester_stats({}, 2)
    with Store(db) as store:
        saved = store.requester_stats()
        assert saved == {"req": {"rfqs": 1, "quotes": 1, "accepts": 1, "fills": 1,
                                 "markouts": {"1000": [1, -40_000]}}}
        store.save_requester_stats({"req": {**saved["req"], "rfqs": 7}}, 3)
        assert store.requester_stats()["req"]["rfqs"] == 7


def test_a_restart_keeps_the_profile_and_it_changes_the_price(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    first = Run()
    picked_off(first)
    with Store(db) as store:
        store.save_requester_stats(first.engine.requesters.take_dirty(), 1)
    with Store(db) as store:
        fresh, restored = Run(), Run()
        restore_requesters(restored.engine, store)
    assert restored.engine.requesters.stats("req") == first.engine.requesters.stats("req")
    # Average mark-out -0.04: quoted 0.04 wider a side than to a stranger or before restoring.
    assert (fresh.quote("r2", "req").yes_bid_micros,
            restored.quote("r2", "req").yes_bid_micros,
            restored.quote("r3", "stranger").yes_bid_micros) == (480_000, 440_000, 480_000)


def test_an_unreadable_row_is_skipped_not_a_crash(tmp_path: Path) -> None:
    with Store(tmp_path / "q.db") as store:
        store.save_requester_stats({"bad": {"rfqs": "many"}, "odd": {"markouts": {"1": [1]}},
                                    "ok": {"rfqs": 2}}, 1)
        run = Run()
        restore_requesters(run.engine, store)
        assert run.engine.requesters.stats("ok").rfqs == 2
        assert run.engine.requesters.stats("bad").rfqs == 0
        assert run.engine.requesters.stats("odd").rfqs == 0
