"""``quoter explain --config C RFQ.json``: which strategy takes an RFQ, what each module did.

See :mod:`quoter.service.explain` for the input file. Exit status: 0 explained (whether or not
it would quote), 1 when the config or the input is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from quoter.clock import LiveClock
from quoter.config import load_config
from quoter.config.shipped import shipped_path
from quoter.errors import QuoterError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``explain`` subcommand."""
    p = subparsers.add_parser(
        "explain", help="show which strategy would take an RFQ, each module's answer, the bids",
        description=(
            "Route and price one RFQ as the engine would: the strategy that takes it (and why "
            "earlier ones did not), the pricer's answer, each overlay's, and the bids after "
            "the grid. RFQ.json holds {\"rfq\": <rfq_created frame or msg>, \"market\": "
            "<GET /markets/{ticker} market>, \"orderbooks\": {ticker: <GET .../orderbook "
            "body>}}; market and orderbooks are optional. Risk state is a fresh service's."
        ),
    )
    p.add_argument("--config", type=shipped_path, required=True, help="strategy config YAML")
    p.add_argument("rfq_file", type=Path, metavar="RFQ.json", help="the RFQ and its market data")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Explain one RFQ; 1 on a bad config or input file."""
    from quoter.service.explain import explain, load_explain_input

    try:
        config = load_config(args.config)
        try:
            text = args.rfq_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"quoter explain: {args.rfq_file}: cannot read: {exc}", file=sys.stderr)
            return 1
        inp = load_explain_input(text)
        clock = LiveClock()
        result = explain(config, inp, now_wall_ms=clock.wall_ns() // 1_000_000)
    except QuoterError as exc:
        where = "" if str(exc).startswith(str(args.config)) else f"{args.rfq_file}: "
        print(f"quoter explain: {where}{exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.render(), end="")
    return 0
