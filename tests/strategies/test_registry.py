"""The registry: built-ins, kinds, errors, and a third-party module through its entry point."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from strat_fixtures import pricing_input

from quoter.config import parse_config
from quoter.errors import ConfigError
from strategies import registry
from strategies.base import Pricing
from strategies.book_mid import BookMid, BookMidParams

BUILTINS = {"book_mid", "microprice", "fixed", "combo",
            "inventory_skew", "size_edge", "fee_edge", "requester_profile"}


def test_builtins_are_registered_with_their_kinds() -> None:
    assert set(registry.available()) >= BUILTINS
    assert {n for n in BUILTINS if registry.get_spec(n).kind == "pricer"} == {
        "book_mid", "microprice", "fixed", "combo"}


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="unknown strategy module 'nope'; available: book_mid"):
        registry.get_spec("nope")
    with pytest.raises(KeyError):
        registry.get_spec("nope")


def test_build_checks_the_params_type() -> None:
    built = registry.build("book_mid", BookMidParams())
    assert isinstance(built, BookMid)
    with pytest.raises(ConfigError, match="needs MicropriceParams"):
        registry.build("microprice", BookMidParams())


def test_typed_builders_check_the_kind() -> None:
    assert isinstance(registry.build_pricer("book_mid", BookMidParams()), BookMid)
    with pytest.raises(ConfigError, match="is a pricer, not an overlay"):
        registry.build_overlay("book_mid", BookMidParams())
    with pytest.raises(ConfigError, match="is an overlay, not a pricer"):
        registry.build_pricer("fee_edge", registry.get_spec("fee_edge").params_model())


def test_conflicting_registration_is_refused() -> None:
    spec = registry.get_spec("book_mid")
    registry.register(spec)  # same spec: fine
    clash = registry.ModuleSpec("book_mid", "pricer", spec.params_model, lambda p: BookMid(
        BookMidParams()))
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(clash)


def test_third_party_pricer_loads_through_its_entry_point() -> None:
    # Installed by the Makefile: pip install -e tests/thirdparty_pricer
    eps = {ep.name: ep.value for ep in entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert eps.get("my_pricer") == "thirdparty_pricer:SPEC"
    registry.load_entry_points()
    spec = registry.get_spec("my_pricer")
    assert spec.kind == "pricer"


def test_third_party_pricer_used_from_yaml() -> None:
    cfg = parse_config(
        "version: 1\n"
        "strategies:\n"
        "  - name: theirs\n"
        "    pricer:\n"
        "      name: my_pricer\n"
        "      params: {fair_dollars: 0.3, edge_dollars: \"0.05\"}\n"
    )
    ref = cfg.strategies[0].pricer
    pricer = registry.build(ref.name, ref.params)
    assert pricer.price(pricing_input()) == Pricing(300_000, 250_000, 650_000)  # type: ignore[union-attr]
    where = r"<string>:6: strategies\[0\]\.pricer\.params\.fair_dollars"
    with pytest.raises(ConfigError, match=where):
        parse_config(
            "version: 1\nstrategies:\n  - name: theirs\n    pricer:\n      name: my_pricer\n"
            "      params: {fair_dollars: \"1.2\"}\n"
        )


def test_the_documented_example_works() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "strategies.md").read_text("utf-8")
    code = re.search(r"```python\n# src/mypricers/__init__.py\n(.*?)```", doc, re.S)
    assert code is not None
    namespace: dict[str, object] = {"__name__": "mypricers"}
    exec(compile(code.group(1), "docs/strategies.md", "exec", dont_inherit=True), namespace)
    registry.register(namespace["SPEC"])  # type: ignore[arg-type]
    cfg = parse_config(
        "version: 1\nstrategies:\n  - name: d\n    pricer:\n      name: last_trade\n"
        "      params: {edge_dollars: \"0.03\"}\n"
    )
    ref = cfg.strategies[0].pricer
    out = registry.build_pricer(ref.name, ref.params).price(pricing_input())
    assert out == Pricing(410_000, 380_000, 560_000)
