"""Wire decoding throughput (target P6: >= 5,000 frames/s per core with headroom).

Baseline: ``json.loads`` of the same frames (the cheapest way to merely parse them), measured in
the same run. Reported: ``peek_type`` (the pre-filter's probe), ``decode_frame`` (typed
structs) and ``decode_events`` (structs + exact money + domain events).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks._timing import per_item_ns, report
from quoter.config import load_config
from quoter.kalshi.schemas import decode_frame, peek_type
from quoter.kalshi.translate import decode_events
from quoter.runtime.prefilter import build_prefilter

FRAMES_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "frames"


def _corpus() -> list[bytes]:
    lines: list[bytes] = []
    for name in ("current_communications.jsonl", "market_data.jsonl"):
        for line in (FRAMES_DIR / name).read_bytes().splitlines():
            if line.strip():
                lines.append(line)
    # A realistic firehose is ~half rfq_created / half rfq_deleted; weight toward them.
    rfq = [f for f in lines if b'"rfq_' in f]
    return (lines + rfq * 4) * 50


def main() -> list[dict[str, object]]:
    """Run and print the decode benchmarks."""
    frames = _corpus()
    ts = 1_700_000_000_000_000_000
    base = per_item_ns(json.loads, frames)
    print(f"decode: {len(frames)} frames; baseline json.loads {base / 1000:.2f} us/frame")
    keep = build_prefilter(load_config(Path("config/demo.yaml")))
    unroutable = [
        b'{"type":"rfq_created","sid":1,"msg":{"id":"%d","market_ticker":"KXNFLGAME-25NOV%02d-KC",'
        b'"event_ticker":"KXNFLGAME-25NOV%02d","contracts_fp":"10.00",'
        b'"created_ts":"2026-11-24T10:00:00Z"}}' % (i, i % 30, i % 30)
        for i in range(2_000)
    ]
    dropped = sum(not keep(f) for f in unroutable)
    assert dropped == len(unroutable), "the demo config must not route these"
    return [
        report("prefilter: drop unroutable rfq_created",
               per_item_ns(keep, unroutable), "json.loads", base),
        report("peek_type (pre-filter probe)", per_item_ns(peek_type, frames), "json.loads", base),
        report("decode_frame (typed structs)",
               per_item_ns(lambda f: decode_frame(f, ts), frames), "json.loads", base),
        report("decode_events (structs+money+events)",
               per_item_ns(lambda f: decode_events(f, ts), frames), "json.loads", base),
    ]


if __name__ == "__main__":
    main()
