"""``python -m backtests``: the backtest command line (:mod:`backtests.cli`)."""

import sys

from backtests.cli import main

sys.exit(main())
