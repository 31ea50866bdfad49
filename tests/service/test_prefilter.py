"""The raw pre-filter drops only RFQs that no strategy could route."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quoter.config import parse_config
from quoter.domain.events import RfqReceived
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import MarketInfo, MarketStatus
from quoter.runtime import prefilter
from quoter.runtime.prefilter import build_prefilter

CONFIG = """
version: 1
strategies:
  - name: weather
    match: {series: ["KXHIGH*"], kind: single}
    pricer: {name: book_mid, params: {edge_dollars: "0.01"}}
  - name: fed
    match: {events: ["FED-23DEC"], kind: single}
    pricer: {name: book_mid, params: {edge_dollars: "0.01"}}
  - name: combos
    match: {kind: combo, collections: ["KXMVE*"]}
    pricer: {name: combo, params: {edge_dollars: "0.02"}}
  - name: retired
    enabled: false
    match: {markets: ["OFF-*"]}
    pricer: {name: book_mid, params: {edge_dollars: "0.01"}}
"""


LEGS = [{"event_ticker": "KXA-1", "market_ticker": "KXA-1-Y", "side": "yes"},
        {"event_ticker": "KXB-1", "market_ticker": "KXB-1-Y", "side": "no"}]


def _rfq(ticker: str, *, combo: bool = False, spaced: bool = False) -> bytes:
    msg: dict[str, object] = {"id": "r1", "market_ticker": ticker, "contracts_fp": "10.00"}
    if combo:
        msg["mve_collection_ticker"] = "KXMVECROSSCATEGORY-R"
        msg["mve_selected_legs"] = LEGS
    raw = msgspec.json.encode({"type": "rfq_created", "sid": 1, "msg": msg})
    return raw.replace(b'":', b'": ') if spaced else raw


keep = build_prefilter(parse_config(CONFIG))


def test_drops_unroutable_rfqs_only() -> None:
    assert keep(_rfq("KXHIGHNY-25NOV24-B45"))
    assert keep(_rfq("FED-23DEC-T3.00"))
    assert not keep(_rfq("KXNFLGAME-25NOV24-KC"))
    assert not keep(_rfq("KXNFLGAME-25NOV24-KC", spaced=True))
    assert not keep(_rfq("OFF-1"))  # disabled strategies route nothing


def test_kind_is_honoured() -> None:
    assert keep(_rfq("KXMVESPORTS-S1", combo=True))
    # a single-market RFQ on a combo-looking ticker: only combo strategies want KXMVE*
    assert not keep(_rfq("KXMVESPORTS-S1"))
    # a combo on a weather series: the weather strategy is single-only
    assert keep(_rfq("KXHIGHNY-X", combo=True))  # the combo strategy takes any ticker


def test_a_combo_listing_its_legs_is_read_and_filtered() -> None:
    singles = build_prefilter(parse_config(CONFIG.split("  - name: combos", maxsplit=1)[0]))
    assert not singles(_rfq("KXMVESPORTS-S1", combo=True))
    assert not singles(_rfq("KXHIGHNY-X", combo=True))  # weather is single-only
    assert singles(_rfq("KXHIGHNY-X"))
    # Legs alone (no collection ticker) make a combo too, as in the decoder.
    legs_only = msgspec.json.encode({"type": "rfq_created", "msg": {
        "id": "r1", "market_ticker": "KXHIGHNY-X", "mve_selected_legs": LEGS}})
    assert not singles(legs_only)
    assert keep(legs_only)


def test_never_drops_other_frames_or_unreadable_tickers() -> None:
    keep = build_prefilter(parse_config(CONFIG))  # fresh: no RFQ dropped before
    deleted = b'{"type":"rfq_deleted","sid":1,"msg":{"id":"r1","market_ticker":"NOPE-1"}}'
    assert keep(deleted)
    assert keep(b'{"type":"quote_accepted","msg":{"market_ticker":"NOPE-1"}}')
    assert keep(b'{"type":"rfq_created","msg":{"id":"r1"}}')
    assert keep(b'{"type":"rfq_created","msg":{"market_ticker":42}}')


def test_json_escapes_are_read_like_the_decoder_reads_them() -> None:
    assert keep(b'{"type":"rfq_created","msg":{"market_ticker":"KXHIGH\\u0041-1"}}')
    assert not keep(b'{"type":"rfq_created","msg":{"market_ticker":"NOPE\\u0041-1"}}')
    assert keep("not json at all")


tickers = st.from_regex(r"[A-Z]{2,8}(-[A-Z0-9]{1,6}){0,3}", fullmatch=True)


@given(tickers, st.booleans())
def test_agrees_with_the_engine_router(ticker: str, combo: bool) -> None:
    """Whatever the prefilter drops, the config's own router would not quote."""
    config = parse_config(CONFIG)
    series = ticker.split("-", 1)[0]
    event = ticker.rsplit("-", 1)[0]
    market = MarketInfo(ticker, event, series, MarketStatus.ACTIVE,
                        grid_for_structure("linear_cent"),
                        mve_collection_ticker="KXMVECROSSCATEGORY-R" if combo else None)
    rfq = RfqReceived("r1", ticker, 0, event_ticker=event, contracts_centi=1_000,
                      mve_collection_ticker="KXMVECROSSCATEGORY-R" if combo else None)
    routable = any(s.enabled and s.match.matches(rfq, market, None) is None
                   for s in config.strategies)
    if not keep(_rfq(ticker, combo=combo)):
        assert not routable


def test_a_frame_nested_too_deep_goes_on_to_the_decoder_unread() -> None:
    # Found by the chaos soak: a 1,000-deep field (even in a frame we would drop) made the
    # envelope probe raise RecursionError, which ended the ingest task and the service.
    deep = b'{"type":"rfq_created","sid":1,"msg":{"market_ticker":"KXNFLGAME-1","pad":' + (
        b"[" * 1_000 + b"]" * 1_000 + b"}}")
    assert keep(deep)
    assert keep(deep.decode())
    inner = b'{"type":"rfq_created","sid":1,"msg":' + b"[" * 1_000 + b"]" * 1_000 + b"}"
    assert keep(inner)


def test_frames_are_judged_by_the_type_the_decoder_reads() -> None:
    # Key order, text or bytes, a look-alike type, a duplicate "type" key (the last one wins,
    # as in the decoder), a missing or malformed msg: only a readable, unroutable
    # rfq_created is dropped.
    drop = b'"msg":{"id":"r1","market_ticker":"KXNFL-1-KC","contracts_fp":"1.00"}'
    cases = {
        b'{"type":"rfq_created","sid":1,' + drop + b"}": False,
        b'{"sid":1,' + drop + b',"type":"rfq_created"}': False,
        b'{"type":"rfq_created_v2","sid":1,' + drop + b"}": True,  # another type: kept
        b'{"type":"rfq_created","sid":1,' + drop + b',"type":"rfq_deleted"}': True,
        b'{"type":"rfq_created","sid":1,"msg":null}': True,
        b'{"type":"rfq_created","sid":1,"msg":{"id":"r1"}}': True,  # no ticker: decoder says
        b'{"type":"rfq_created","sid":1,"msg":[1]}': True,  # malformed: the decoder reports
        b'{"type":"rfq_deleted","sid":1,' + drop + b"}": True,
        b'{"type":"rfq_created"': True,  # truncated
    }
    for frame, verdict in cases.items():
        for form in (frame, frame.decode()):
            fresh = build_prefilter(parse_config(CONFIG))  # no dropped RFQ remembered
            assert fresh(form) is verdict, form


def _deleted(rfq_id: str, ticker: str = "KXNFLGAME-25NOV24-KC") -> bytes:
    return msgspec.json.encode({"type": "rfq_deleted", "sid": 1,
                                "msg": {"id": rfq_id, "market_ticker": ticker}})


def _created(rfq_id: str, ticker: str) -> bytes:
    return msgspec.json.encode({"type": "rfq_created", "sid": 1, "msg": {
        "id": rfq_id, "market_ticker": ticker, "contracts_fp": "10.00"}})


def test_the_delete_of_a_dropped_rfq_is_dropped_once_and_only_that() -> None:
    keep = build_prefilter(parse_config(CONFIG))
    assert not keep(_created("gone", "KXNFLGAME-25NOV24-KC"))
    assert keep(_created("ours", "KXHIGHNY-25NOV24-B45"))
    assert keep(_deleted("unknown"))  # never seen: the engine decides
    assert keep(_deleted("ours", "KXHIGHNY-25NOV24-B45"))
    assert not keep(_deleted("gone"))  # the engine never heard of it
    assert keep(_deleted("gone"))  # forgotten once used: a repeat goes through
    assert keep(b'{"type":"rfq_deleted","sid":1,"msg":{"id":7}}')  # unreadable: the decoder


def test_remembered_ids_are_bounded_oldest_forgotten_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prefilter, "_DROPPED_IDS_MAX", 3)
    keep = build_prefilter(parse_config(CONFIG))
    for i in range(5):
        assert not keep(_created(f"r{i}", "KXNFLGAME-25NOV24-KC"))
    assert keep(_deleted("r0"))  # forgotten: passed on, harmlessly
    assert keep(_deleted("r1"))
    assert [keep(_deleted(f"r{i}")) for i in (2, 3, 4)] == [False, False, False]
