"""The chaos soak reuses the end-to-end helpers (``tests/e2e/e2e_helpers.py``), not a copy."""

from __future__ import annotations

import sys
from pathlib import Path

_E2E = str(Path(__file__).resolve().parents[1] / "e2e")
if _E2E not in sys.path:
    sys.path.insert(0, _E2E)
