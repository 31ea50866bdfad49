"""The engine is built from parts by injection: no mixins, no signature stubs, calls go down."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from engine_fixtures import config

import quoter.engine as engine_pkg
from quoter.engine.control import Control
from quoter.engine.engine import Engine
from quoter.engine.intake import Intake
from quoter.engine.lastlook import LastLook
from quoter.engine.market import Market
from quoter.engine.pool import PoolRequests
from quoter.engine.quoting import Quoting
from quoter.engine.records import Records
from quoter.engine.retention import Retention
from quoter.engine.totals import Totals
from quoter.engine.tracker import QuoteTracker
from quoter.engine.valuation import Valuation

ENGINE_DIR = Path(inspect.getfile(engine_pkg)).parent
#: The parts, lowest first: a part may hold (and call) only parts before it in this list.
LAYERS: list[tuple[str, type]] = [
    ("valuation", Valuation), ("totals", Totals), ("retention", Retention),
    ("pool", PoolRequests), ("tracker", QuoteTracker), ("quoting", Quoting),
    ("intake", Intake), ("lastlook", LastLook), ("market", Market), ("control", Control),
]


def test_no_module_of_the_engine_copies_signatures_for_the_type_checker() -> None:
    offenders = [p.name for p in ENGINE_DIR.glob("*.py") if "TYPE_CHECKING" in p.read_text()]
    assert offenders == []


def test_engine_and_its_parts_are_plain_classes_not_mixins() -> None:
    assert Engine.__mro__ == (Engine, object)
    for _, cls in LAYERS:
        assert cls.__mro__ == (cls, object), cls


def test_the_engine_hands_every_part_its_collaborators() -> None:
    engine = Engine(config())
    assert type(engine.records) is Records
    for attr, cls in LAYERS:
        part = getattr(engine, attr)
        assert type(part) is cls
        assert part.r is engine.records  # one cache, shared
        for name, value in vars(part).items():
            if name != "r" and type(value) in dict(LAYERS).values():
                assert getattr(engine, name) is value  # the engine's own part, not a copy


def test_a_part_holds_only_parts_below_it() -> None:
    rank = {cls: i for i, (_, cls) in enumerate(LAYERS)}
    engine = Engine(config())
    for attr, cls in LAYERS:
        for value in vars(getattr(engine, attr)).values():
            if type(value) in rank:
                assert rank[type(value)] < rank[cls], (cls.__name__, type(value).__name__)


def test_no_part_imports_the_engine_or_a_part_above_it() -> None:
    modules = {cls: Path(inspect.getfile(cls)).stem for _, cls in LAYERS}
    rank = {modules[cls]: i for i, (_, cls) in enumerate(LAYERS)}
    for stem, i in rank.items():
        tree = ast.parse((ENGINE_DIR / f"{stem}.py").read_text())
        imported = {n.module.rsplit(".", 1)[-1] for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and n.module
                    and n.module.startswith("quoter.engine.")}
        assert "engine" not in imported, stem
        above = {m for m in imported if rank.get(m, -1) > i}
        assert above == set(), stem
