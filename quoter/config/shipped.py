"""The configs and simulator worlds shipped inside the package (``quoter/bundled``).

The repository's ``config/`` directory is installed as package data, so the paths the docs
use (``config/demo.yaml``, ``config/examples/...``, ``config/sim-world.yaml``) work from any
directory: a relative ``config/...`` path that does not exist where the command runs is
looked up in the shipped copy. A path that exists always wins (the user's own file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["BUNDLED_DIR", "shipped_path"]

#: Where the shipped copy of ``config/`` lives (a link to it in a source checkout).
BUNDLED_DIR: Final = Path(__file__).resolve().parents[1] / "bundled"
_PREFIX: Final = "config"


def shipped_path(text: str | Path) -> Path:
    """Return ``text`` as a path, or the shipped file it names if it is not there."""
    path = Path(text)
    if path.exists() or path.is_absolute():
        return path
    parts = path.parts
    if len(parts) > 1 and parts[0] == _PREFIX:
        candidate = BUNDLED_DIR.joinpath(*parts[1:])
        if candidate.is_file():
            return candidate
    return path
