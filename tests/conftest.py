"""Make the test-only third-party pricer (``my_pricer``) discoverable in this test process only.

It is never installed (``make install`` / ``make demo`` leave a user's environment without
it): its source and a ``.dist-info`` with its ``quoter.strategies`` entry point sit in
``tests/thirdparty_pricer/src``, and ``importlib.metadata`` finds distributions on
``sys.path``, exactly as it finds an installed one. This is the root conftest so that the path
is in place before any test module is imported (some build the registry at import time).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

# The backtests' test-only user auction model (``thirdparty_auction``) is found the same way.
for _name in ("thirdparty_pricer", "thirdparty_auction"):
    _SRC = str(Path(__file__).resolve().parent / _name / "src")
    if _SRC not in sys.path:
        sys.path.insert(0, _SRC)
        importlib.invalidate_caches()
