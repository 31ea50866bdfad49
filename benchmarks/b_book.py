"""B4: order-book replay: decode + book update + top of book, per ``orderbook_delta`` frame.

Real-shaped frames (the wire layout of ``tests/data/frames/market_data.jsonl``: ``_dollars`` /
``_fp`` strings, ``ts_ms``) for 20 markets, each seeded by a 25-level snapshot; a seeded random
walk of deltas that never drives a level negative. Per frame: the production decoder
(``quoter.kalshi.decode.decode``), ``OrderBook.apply_delta`` and the best YES bid and ask.
Target: >= 500,000 frames/s. Baselines in the same run: ``json.loads`` of the same lines, and
NautilusTrader's Rust ``OrderBook`` (L2) applying the same deltas, pre-built, and reading its
best bid/ask after each, when the optional ``bench`` extra is installed.
"""

from __future__ import annotations

import json
import random
from typing import Any

from benchmarks._suite import Result, best_rate
from quoter.domain import events as E
from quoter.domain.book import OrderBook
from quoter.domain.types import Side
from quoter.kalshi.decode import decode

TS = 1_700_000_000_000_000_000
MARKETS = tuple(f"KXREPLAY-26NOV{i + 1:02d}-T{50 + i}" for i in range(20))


def deltas(n: int, seed: int = 11) -> tuple[dict[str, Any], list[tuple[str, str, int, int]]]:
    """Snapshots (cents levels) and ``n`` deltas ``(ticker, side, price_cents, delta_centi)``."""
    rng = random.Random(seed)
    books: dict[str, dict[str, dict[int, int]]] = {}
    for t in MARKETS:
        books[t] = {"yes": {p: rng.randint(1, 500) * 100 for p in range(20, 45)},
                    "no": {p: rng.randint(1, 500) * 100 for p in range(50, 75)}}
    snapshots = {t: {s: dict(levels) for s, levels in b.items()} for t, b in books.items()}
    out: list[tuple[str, str, int, int]] = []
    for _ in range(n):
        t = MARKETS[rng.randrange(len(MARKETS))]
        side = "yes" if rng.random() < 0.5 else "no"
        lo = 20 if side == "yes" else 50
        price = lo + min(24, int(rng.expovariate(0.25)))  # most activity near the top
        have = books[t][side].get(price, 0)
        delta = rng.randint(1, 300) * 100
        if have and rng.random() < 0.5:
            delta = -min(have, delta)
        books[t][side][price] = have + delta
        out.append((t, side, price, delta))
    return snapshots, out


def _frame(seq: int, ticker: str, side: str, price_cents: int, delta_centi: int) -> bytes:
    # We subscribe with use_yes_price: a NO level arrives at its YES price (§2.6).
    price_cents = price_cents if side == "yes" else 100 - price_cents
    return json.dumps({"type": "orderbook_delta", "sid": 2, "seq": seq, "msg": {
        "market_ticker": ticker, "market_id": "9b0f6b43-5b68-4f9f-9f02-9a2b4d4ef1a0",
        "price_dollars": f"{price_cents / 100:.4f}", "delta_fp": f"{delta_centi / 100:.2f}",
        "side": side, "ts_ms": 1_669_149_841_000 + seq}}, separators=(",", ":")).encode()


def _our_books(snapshots: dict[str, Any]) -> dict[str, OrderBook]:
    books = {}
    for t, snap in snapshots.items():
        b = OrderBook(t)
        b.apply_snapshot([(p * 10_000, q) for p, q in snap["yes"].items()],
                         [(p * 10_000, q) for p, q in snap["no"].items()], TS)
        books[t] = b
    return books


def _nautilus(snapshots: dict[str, Any], ds: list[tuple[str, str, int, int]],
              repeat: int) -> float | None:
    try:
        from nautilus_trader.model.book import OrderBook as NtBook
        from nautilus_trader.model.data import BookOrder, OrderBookDelta
        from nautilus_trader.model.enums import BookAction, BookType, OrderSide
        from nautilus_trader.model.identifiers import InstrumentId
        from nautilus_trader.model.objects import Price, Quantity
    except ImportError:
        return None
    ids = {t: InstrumentId.from_str(f"{t}.KALSHI") for t in MARKETS}
    # Kalshi books hold bids on both sides: a NO bid at p is a YES ask at 1 - p.
    def order(side: str, price_cents: int, qty_centi: int) -> BookOrder:
        if side == "yes":
            return BookOrder(OrderSide.BUY, Price(price_cents / 100, 2),
                             Quantity(qty_centi / 100, 2), 0)
        return BookOrder(OrderSide.SELL, Price((100 - price_cents) / 100, 2),
                         Quantity(qty_centi / 100, 2), 0)

    levels = {t: {s: dict(v) for s, v in snap.items()} for t, snap in snapshots.items()}
    built = []
    for i, (t, side, price, delta) in enumerate(ds):
        qty = levels[t][side].get(price, 0) + delta
        levels[t][side][price] = qty
        action = BookAction.UPDATE if qty > 0 else BookAction.DELETE
        built.append((t, OrderBookDelta(ids[t], action, order(side, price, max(qty, 0)),
                                        0, i + 1, 0, 0)))

    def fresh() -> dict[str, Any]:
        books = {}
        for t, snap in snapshots.items():
            b = NtBook(ids[t], BookType.L2_MBP)
            for side, lv in snap.items():
                for p, q in lv.items():
                    b.apply_delta(OrderBookDelta(ids[t], BookAction.ADD, order(side, p, q),
                                                 0, 0, 0, 0))
            books[t] = b
        return books

    best = 0.0
    for _ in range(repeat):
        books = fresh()

        def step(item: tuple[str, Any], books: dict[str, Any] = books) -> None:
            b = books[item[0]]
            b.apply_delta(item[1])
            b.best_bid_price()
            b.best_ask_price()

        best = max(best, best_rate(step, built, repeat=1))
    return best


def run(quick: bool) -> list[Result]:
    """Measure B4."""
    snapshots, ds = deltas(2_000 if quick else 100_000)
    frames = [_frame(i + 1, *d) for i, d in enumerate(ds)]
    repeat = 1 if quick else 3
    best = 0.0
    for _ in range(repeat):
        books = _our_books(snapshots)

        def step(frame: bytes, books: dict[str, OrderBook] = books) -> None:
            _, events = decode(frame, TS)
            for event in events:
                if isinstance(event, E.BookDeltaReceived):
                    book = books[event.market_ticker]
                    book.apply_delta(event.side is Side.YES, event.price_micros,
                                     event.delta_centi, TS, yes_priced=event.yes_priced)
                    book.best_yes_bid()
                    book.best_yes_ask()

        best = max(best, best_rate(step, frames, repeat=1))
    base = best_rate(json.loads, frames, repeat=repeat)
    nt = _nautilus(snapshots, ds, repeat)
    extra: dict[str, object] = {"frames": len(frames), "json_loads_per_s": base,
                                "nautilus_orderbook_per_s": nt}
    try:
        import orjson

        extra["orjson_loads_per_s"] = best_rate(orjson.loads, frames, repeat=repeat)
    except ImportError:
        extra["orjson_loads_per_s"] = None
    if nt is not None:
        return [Result("B4", "book replay: decode + delta + top of book", best, "frames/s",
                       500_000, nt, "NautilusTrader OrderBook", higher_is_better=True,
                       extra=extra)]
    return [Result("B4", "book replay: decode + delta + top of book", best, "frames/s",
                   500_000, base, "json.loads", higher_is_better=True,
                   note="NautilusTrader not installed (pip install -e '.[bench]')",
                   extra=extra)]
