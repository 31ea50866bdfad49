"""B3: the ``communications`` firehose through pre-filter + decode + lane routing, one core.

Frames: half ``rfq_created``, half ``rfq_deleted``; 1.5% of the RFQs are on markets the demo
config routes (``KXSIM*``). Each frame goes the way the driver's ingest takes it
(``quoter.runtime.driver.Runtime._ingest``): the pre-filter (``build_prefilter``), then for the
frames it keeps the production decoder (``quoter.kalshi.decode.decode``) and the lane choice
(``PRIORITY_TYPES``). The engine is not in this figure (``python -m benchmarks engine`` has
decode + engine). Targets: >= 200,000 frames/s; <= 1 µs per dropped frame. Baselines, same
frames, same run: ``json.loads`` and, when installed, ``orjson.loads``.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks._suite import Result, best_rate
from quoter.config import load_config
from quoter.kalshi.decode import decode
from quoter.runtime.driver import PRIORITY_TYPES
from quoter.runtime.prefilter import build_prefilter

CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.yaml"
TS = 1_700_000_000_000_000_000


def _created(i: int, ticker: str) -> bytes:
    return json.dumps({"type": "rfq_created", "sid": 1, "seq": 2 * i + 1, "msg": {
        "id": f"rfq-{i:08d}", "creator_id": f"c{i % 97}", "market_ticker": ticker,
        "event_ticker": ticker.rsplit("-", 1)[0], "contracts_fp": "10.00",
        "created_ts": "2026-11-24T07:00:00Z"}}, separators=(",", ":")).encode()


def _deleted(i: int, ticker: str) -> bytes:
    return json.dumps({"type": "rfq_deleted", "sid": 1, "seq": 2 * i + 2, "msg": {
        "id": f"rfq-{i:08d}", "creator_id": f"c{i % 97}", "market_ticker": ticker,
        "event_ticker": ticker.rsplit("-", 1)[0], "deleted_ts": "2026-11-24T07:00:01Z"}},
        separators=(",", ":")).encode()


def firehose(n_pairs: int) -> list[bytes]:
    """``2 * n_pairs`` frames; RFQ ``i`` is routable when ``i % 67 == 0`` (1.5%)."""
    frames: list[bytes] = []
    for i in range(n_pairs):
        ticker = (f"KXSIMA-26NOV01-M{i % 5 + 1}" if i % 67 == 0
                  else f"KXOTHER{i % 400}-26NOV{i % 28 + 1:02d}-X{i % 7}")
        frames += [_created(i, ticker), _deleted(i, ticker)]
    return frames


def run(quick: bool) -> list[Result]:
    """Measure B3 (frames/s) and B3-drop (µs per dropped frame)."""
    frames = firehose(500 if quick else 20_000)
    repeat = 1 if quick else 5
    keep = build_prefilter(load_config(CONFIG))

    def step(frame: bytes) -> None:
        if not keep(frame):
            return
        msg_type, _events = decode(frame, TS)
        _lane = msg_type in PRIORITY_TYPES

    for f in frames:  # warm the pre-filter's verdict cache, as in the steady state
        step(f)
    rate = best_rate(step, frames, repeat=repeat)
    base = best_rate(json.loads, frames, repeat=repeat)
    extra: dict[str, object] = {"frames": len(frames), "json_loads_per_s": base}
    try:
        import orjson

        extra["orjson_loads_per_s"] = best_rate(orjson.loads, frames, repeat=repeat)
    except ImportError:
        extra["orjson_loads_per_s"] = None
    dropped = [f for f in frames if not keep(f)]
    drop_rate = best_rate(keep, dropped, repeat=repeat)
    kept = len(frames) - len(dropped)
    extra["kept_frames"] = kept
    return [
        Result("B3", "firehose: pre-filter + decode + lane", rate, "frames/s", 200_000,
               base, "json.loads", higher_is_better=True, extra=extra),
        Result("B3-drop", "firehose: cost of one dropped rfq_created", 1e6 / drop_rate, "µs",
               1.0, 1e6 / base, "json.loads", extra={"dropped_frames": len(dropped)}),
    ]
