"""Sample inputs made by the simulator: the recordings in ``backtests/data/`` and book flow.

``python -m backtests.samples DIR`` (``make samples``) regenerates, deterministically (seeded
worlds in virtual time, no sockets, a few seconds):

* ``single.jsonl.gz``: a recorded world run of ``config/demo.yaml`` (3 minutes of virtual time)
  on single markets only, whose markets close, are determined and settle inside the recording;
* ``combo.jsonl.gz``: the same with combo RFQs (most of the flow) over those markets, the
  combos settling too;
* ``market-data.jsonl.gz``: the single run's public market data only (books, lifecycle) in the
  interchange form (``{"ts_recv_ns", "frame"}`` lines): no RFQs and none of our quotes, the
  input for ``--synthetic-rfqs``.

:func:`write_book_flow` writes an order-book-heavy interchange file of any length, streamed
(constant memory): the benchmark (B5) and the constant-memory test use it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final, cast

from backtests.models import LatencyModel
from backtests.world import WALL_OFFSET_NS, run_world
from quoter.config import load_config
from quoter.domain.money import format_fp
from quoter.kalshi.frames import wrap_frame
from quoter.sim.config import WorldConfig
from quoter.sim.wire import dollars

__all__ = ["DEMO_CONFIG", "SAMPLES", "main", "market_data_only", "write_book_flow",
           "write_samples"]

#: The strategy config the samples were recorded with (the demo's).
DEMO_CONFIG: Final = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"

_SECONDS: Final = 180.0

#: name -> (world overrides, seed). Markets close after 130-150 s, so they are determined and
#: settle inside the 180 s run; two events of two markets keep the files small (~40-70 kB).
SAMPLES: Final[dict[str, tuple[dict[str, Any], int]]] = {
    "single": ({"markets": {"series": 1, "events_per_series": 2, "markets_per_event": 2,
                            "combos": 0,
                            "close_after_ms": {"min_ms": 130_000, "max_ms": 150_000}},
                "requesters": {"combo_fraction": 0.0, "rfq_rate_per_s": 1.0}}, 7),
    "combo": ({"markets": {"series": 1, "events_per_series": 2, "markets_per_event": 2,
                           "combos": 3,
                           "close_after_ms": {"min_ms": 130_000, "max_ms": 150_000}},
               "requesters": {"combo_fraction": 0.7, "rfq_rate_per_s": 1.5}}, 7),
}

#: Frame types of the public market data (what ``quoter record`` of books alone would hold).
_MARKET_DATA: Final = frozenset({"orderbook_snapshot", "orderbook_delta", "ticker", "trade",
                                 "market_lifecycle_v2", "multivariate_market_lifecycle"})


def write_samples(out_dir: Path) -> list[Path]:
    """Write the sample recordings into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(DEMO_CONFIG)
    paths = []
    for name, (world, seed) in SAMPLES.items():
        path = out_dir / f"{name}.jsonl.gz"
        tmp = path.with_suffix(".tmp")
        run_world(config, seed=seed, seconds=_SECONDS, world=WorldConfig.model_validate(world),
                  record=tmp, latency=LatencyModel(seed=1))
        _normalise_gzip(tmp, path)
        paths.append(path)
    data = out_dir / "market-data.jsonl.gz"
    market_data_only(out_dir / "single.jsonl.gz", data)
    paths.append(data)
    return paths


def _normalise_gzip(src: Path, dst: Path) -> None:
    """Re-compress with mtime 0, so regenerating gives the same bytes (a clean diff)."""
    with gzip.open(src, "rb") as f:
        body = f.read()
    with dst.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as g:
        g.write(body)
    src.unlink()


def market_data_only(recording: Path, out: Path) -> int:
    """Write a recording's public market-data frames as interchange lines; return the count."""
    n = 0
    with gzip.open(recording, "rt", encoding="utf-8") as src, out.open("wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as dst:
        for line in src:
            obj = json.loads(line)
            if obj.get("k") != "in":
                continue
            frame = obj["frame"]
            if json.loads(frame).get("type") not in _MARKET_DATA:
                continue
            dst.write(wrap_frame(frame.encode(), int(obj["ts_recv_ns"])) + b"\n")
            n += 1
    return n


def _levels(levels: dict[int, int]) -> list[list[str]]:
    return [[dollars(p), format_fp(c)] for p, c in sorted(levels.items())]


#: The book flow's best bid and offer sit this far from the mid (a 6-cent spread: room for a
#: maker's quote inside it, so synthetic requesters have a reason to take ours).
_GAP_MICROS: Final = 30_000


def write_book_flow(path: Path, *, frames: int, markets: int = 8, seed: int = 0,
                    interval_ns: int = 1_000_000, series: str = "KXSIMB") -> int:
    """Write ``frames`` order-book frames (a snapshot per market, then deltas), streamed.

    Interchange lines (gzip when ``path`` ends in ``.gz``); one subscription, ``seq`` without
    gaps; each market's book stays uncrossed around a fixed mid (YES bids below it, NO bids
    above it in YES prices, as ``use_yes_price: true`` sends them), every delta a size change
    of one level of one side. Returns the
    number of frames written.
    """
    rng = random.Random(seed)
    tickers = [f"{series}-26JAN01-M{i + 1}" for i in range(markets)]
    mids = {t: rng.randrange(20, 81) * 10_000 for t in tickers}
    books: dict[str, dict[str, dict[int, int]]] = {}
    seq = 0
    t_ns = 0
    with _open_out(path) as f:
        for ticker in tickers[: min(markets, frames)]:
            mid = mids[ticker]
            books[ticker] = {
                "yes": {mid - _GAP_MICROS - k * 10_000: 10_000 for k in range(5)},
                # NO bids in YES prices (``use_yes_price: true``, as the service subscribes
                # and the production decoder reads): a NO bid at 1 - p is a YES offer at p.
                "no": {mid + _GAP_MICROS + k * 10_000: 10_000 for k in range(5)},
            }
            seq += 1
            t_ns += interval_ns
            msg = {"market_ticker": ticker, "market_id": ticker,
                   "yes_dollars_fp": _levels(books[ticker]["yes"]),
                   "no_dollars_fp": _levels(books[ticker]["no"])}
            f.write(_line(t_ns, {"type": "orderbook_snapshot", "sid": 1, "seq": seq,
                                 "msg": msg}))
        while seq < frames:
            ticker = tickers[rng.randrange(markets)]
            side = "yes" if rng.random() < 0.5 else "no"
            step = rng.randrange(10) * 10_000
            price = (mids[ticker] - _GAP_MICROS - step if side == "yes"
                     else mids[ticker] + _GAP_MICROS + step)
            if not 0 < price < 1_000_000:
                continue
            level = books[ticker][side]
            have = level.get(price, 0)
            delta = -rng.randrange(1, have + 1) if have and rng.random() < 0.5 else (
                rng.randrange(1, 51) * 100)
            if have + delta:
                level[price] = have + delta
            else:
                del level[price]
            seq += 1
            t_ns += interval_ns
            wall_ns = WALL_OFFSET_NS + t_ns
            delta_msg: dict[str, Any] = {
                "market_ticker": ticker, "market_id": ticker, "price_dollars": dollars(price),
                "delta_fp": format_fp(delta), "side": side, "ts_ms": wall_ns // 1_000_000}
            f.write(_line(t_ns, {"type": "orderbook_delta", "sid": 1, "seq": seq,
                                 "msg": delta_msg}))
    return seq


def _open_out(path: Path) -> IO[bytes]:
    """Gzip (fast level: the writer must keep up with a benchmark) for ``*.gz``, else plain."""
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "wb", compresslevel=1))
    return path.open("wb")


def _line(ts_ns: int, frame: dict[str, Any]) -> bytes:
    body = json.dumps(frame, separators=(",", ":")).encode()
    return b'{"ts_recv_ns":%d,"frame":%s}\n' % (ts_ns, body)


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the samples into a directory (default ``backtests/data``)."""
    parser = argparse.ArgumentParser(prog="python -m backtests.samples",
                                     description="Regenerate the sample recordings.")
    parser.add_argument("out", nargs="?", type=Path,
                        default=Path(__file__).resolve().parent / "data")
    args = parser.parse_args(argv)
    import logging

    import structlog

    # The simulator logs every settlement and refusal; regenerating has nothing to say.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for p in write_samples(args.out):
        print(f"wrote {p} ({p.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
