"""quoter.config: strict YAML with line numbers, exact units, cross-field rules, matching,
reload, hashing, the JSON Schema and the ``quoter config`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from quoter.cli import main
from quoter.config import (
    LifecycleParams,
    MatchRule,
    QuoterConfig,
    config_hash,
    config_schema,
    load_config,
    parse_config,
    reload,
)
from quoter.domain.events import RfqReceived
from quoter.domain.grid import grid_for_structure
from quoter.domain.types import ComboLeg, MarketInfo, MarketStatus, Side
from quoter.errors import ConfigError
from strategies import registry
from strategies.book_mid import BookMidParams

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
version: 1
strategies:
  - name: singles
    match:
      series: ["KXSIM*"]
      kind: single
      min_contracts: 1
      max_contracts: "250.50"
      max_notional_dollars: "500"
    pricer:
      name: book_mid
      params:
        edge_dollars: 0.015
    overlays:
      - inventory_skew
      - name: fee_edge
    lifecycle:
      confirm_window_ms: 20000
  - name: combos
    match: {kind: combo, collections: ["KXMVE*"], max_legs: 3}
    pricer: combo
    quoting: {min_spread_dollars: "0.02", post_only: true}
risk:
  max_position_contracts_per_market: 100
  max_worst_case_loss_dollars_per_market: "50.00"
  daily_loss_stop_dollars: "200"
lifecycle:
  book_stale_after_ms: 10000
"""


def test_good_config_units_and_inheritance() -> None:
    cfg = parse_config(GOOD)
    s0, s1 = cfg.strategies
    assert s0.match.min_contracts_centi == 100
    assert s0.match.max_contracts_centi == 25_050
    assert s0.match.max_notional_micros == 500_000_000
    assert isinstance(s0.pricer.params, BookMidParams)
    assert s0.pricer.params.edge_micros == 15_000  # the YAML float 0.015, parsed exactly
    assert [o.name for o in s0.overlays] == ["inventory_skew", "fee_edge"]
    assert s1.quoting.min_spread_micros == 20_000
    assert s1.quoting.post_only is True
    assert cfg.risk.max_position_centi_per_market == 10_000
    assert cfg.risk.max_worst_case_loss_micros_per_market == 50_000_000
    assert cfg.risk.daily_realized_loss_stop_micros == 200_000_000
    # A strategy's lifecycle overrides only the keys it names; the rest inherit the top level.
    assert s0.lifecycle is not None
    assert s0.lifecycle.confirm_window_ms == 20_000
    assert s0.lifecycle.book_stale_after_ms == 10_000
    assert cfg.lifecycle_for(s1) is cfg.lifecycle
    assert cfg.lifecycle.confirm_window_ms == LifecycleParams().confirm_window_ms


def test_models_are_frozen() -> None:
    cfg = parse_config(GOOD)
    with pytest.raises(ValidationError):
        cfg.strategies[0].enabled = False  # type: ignore[misc]


BAD = """\
version: 1
strategies:
  - name: a
    match:
      min_contracts: 10
      max_contracts: 5
    pricer:
      name: book_mid
      params:
        edge_dollars: 0.0150001
        max_spread: "0.1"
    overlays:
      - book_mid
      - name: size_edge
        params: {edge_per_contract_dollars: 1.5}
  - name: a
    pricer: {name: nope}
    quoting:
      pricer_budget_us: 0
risk:
  max_open_quotes: 10
  max_open_quotes: 11
"""


def test_every_error_at_once_with_file_line_and_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, "bad.yaml")
    lines = str(info.value).splitlines()
    assert lines == [
        "bad.yaml:4: strategies[0].match: min_contracts must be <= max_contracts",
        "bad.yaml:10: strategies[0].pricer.params.edge_dollars: "
        "dollar amount '0.0150001' has more than 6 decimal places",
        "bad.yaml:11: strategies[0].pricer.params.max_spread: Extra inputs are not permitted",
        "bad.yaml:13: strategies[0].overlays[0].name: 'book_mid' is a pricer, not an overlay",
        "bad.yaml:15: strategies[0].overlays[1].params.edge_per_contract_dollars: "
        "'1.5' is more than 1 dollar: a price difference cannot be",
        "bad.yaml:16: strategies[1].name: strategy name 'a' is used twice",
        "bad.yaml:17: strategies[1].pricer.name: unknown strategy module 'nope'; available: "
        + lines[6].split("available: ")[1],
        "bad.yaml:19: strategies[1].quoting.pricer_budget_us: "
        "Input should be greater than or equal to 1",
        "bad.yaml:22: risk.max_open_quotes: duplicate key",
    ]
    assert lines[6].endswith("available: " + ", ".join(registry.available()))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "x.yaml:1: the file is empty"),
        ("version: 1\nstrategies: [\n", "x.yaml:3: invalid YAML"),
        ("version: 2\nstrategies: []\n", "x.yaml:1: version: Input should be 1"),
        ("version: 1\nstrategies: []\n", "x.yaml:2: strategies: at least one strategy"),
        ("version: 1\n", "x.yaml:1: strategies: Field required"),
        ("version: 1\nstrategies:\n  - {name: a, pricer: book_mid, enabled: \"yes\"}\n",
         "x.yaml:3: strategies[0].enabled: Input should be a valid boolean"),
        ("version: 1\nstrategies:\n  - {name: a, pricer: book_mid,\n"
         "     match: {market_statuses: [open]}}\n",
         "x.yaml:4: strategies[0].match.market_statuses: unknown market status 'open'"),
        ("version: 1\nstrategies:\n  - name: a\n    pricer: book_mid\n"
         "    quoting: {min_spread_dollars: 0.5e-1}\n",
         "x.yaml:5: strategies[0].quoting.min_spread_dollars: dollar amount '0.5e-1'"),
        ("version: 1\nstrategies:\n  - name: a\n    pricer: book_mid\n"
         "lifecycle: {confirm_safety_margin_ms: 5000}\n",
         "x.yaml:5: lifecycle: confirm_safety_margin_ms must be < hvm_confirm_window_ms"),
        ("version: 1\nstrategies:\n  - name: a\n    pricer: inventory_skew\n",
         "x.yaml:4: strategies[0].pricer.name: 'inventory_skew' is an overlay, not a pricer"),
        ("version: 1\nstrategies:\n  - name: a\n    pricer: book_mid\n"
         "    match: {kind: single, max_legs: 2}\n",
         "x.yaml:5: strategies[0].match: max_legs only applies to combo RFQs"),
    ],
)
def test_single_errors(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_anchors_merges_and_hostile_yaml() -> None:
    cfg = parse_config(
        "version: 1\n"
        "x-skew: &skew {name: inventory_skew, params: {max_skew_dollars: \"0.02\"}}\n"
        "strategies:\n"
        "  - name: a\n"
        "    pricer: book_mid\n"
        "    overlays: [*skew, {<<: *skew, params: {max_skew_dollars: \"0.04\"}}]\n"
    )
    skews = [o.params.max_skew_micros for o in cfg.strategies[0].overlays]  # type: ignore[attr-defined]
    assert skews == [20_000, 40_000]
    with pytest.raises(ConfigError) as info:
        parse_config(
            "version: 1\nstrategies:\n  - name: a\n    pricer: !!python/name:os.system x\n"
            "    match: {[a]: b}\n"
        )
    lines = str(info.value).splitlines()
    assert lines[0].startswith("<string>:4: strategies[0].pricer: invalid YAML value")
    assert "<string>:5: strategies[0].match: keys must be strings" in lines
    laughs = "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
        for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    with pytest.raises(ConfigError, match="too large"):
        parse_config(laughs)


def test_fixed_csv_resolves_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "fv.csv").write_text("ticker,fair_yes_dollars\nKXA-1,0.5\n", encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text(
        "version: 1\nstrategies:\n  - name: f\n    pricer:\n      name: fixed\n"
        "      params: {csv: fv.csv}\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.strategies[0].pricer.params.fair_yes_micros == {"KXA-1": 500_000}  # type: ignore[attr-defined]
    (tmp_path / "fv.csv").write_text("ticker,fair_yes_dollars\nKXA-1,2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.yaml:6: strategies\[0\]\.pricer\.params: .*fv.csv:2"):
        load_config(path)


def test_reload_is_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD, encoding="utf-8")
    first = load_config(path)
    path.write_text(GOOD.replace("edge_dollars: 0.015", "edge_dollars: 0.025"), encoding="utf-8")
    second, why = reload(path, first)
    assert why is None
    assert second.strategies[0].pricer.params.edge_micros == 25_000  # type: ignore[attr-defined]
    assert config_hash(second) != config_hash(first)
    path.write_text(GOOD.replace("version: 1", "version: 7"), encoding="utf-8")
    kept, why = reload(path, second)
    assert kept is second
    assert why is not None
    assert "c.yaml:1: version" in why
    path.unlink()
    kept, why = reload(path, second)
    assert kept is second
    assert why is not None
    assert why.endswith("c.yaml: not found")


def test_hash_is_stable_and_content_based() -> None:
    a = parse_config(GOOD)
    b = parse_config(GOOD.replace("  - name: combos", "\n  - name: combos"))  # whitespace only
    assert config_hash(a) == config_hash(b)
    c = parse_config(GOOD.replace('"0.02", post_only', '"0.03", post_only'))
    assert config_hash(a) != config_hash(c)


# --- match rules ----------------------------------------------------------------------------

MKT = MarketInfo(
    ticker="KXSIMA-26NOV01-M1", event_ticker="KXSIMA-26NOV01", series_ticker="KXSIMA",
    status=MarketStatus.ACTIVE, grid=grid_for_structure("linear_cent"), close_ts_ms=1_000_000,
)


def rfq(**kw: object) -> RfqReceived:
    base: dict[str, object] = {
        "rfq_id": "r", "market_ticker": MKT.ticker, "ts_recv_ns": 0, "creator_id": "alice",
        "contracts_centi": 1_000,
    }
    return RfqReceived(**{**base, **kw})  # type: ignore[arg-type]


def rule(**kw: object) -> MatchRule:
    return MatchRule.model_validate(kw)


@pytest.mark.parametrize(
    ("kw", "event", "expected"),
    [
        ({}, {}, None),
        ({"series": ["kxsim*"]}, {}, None),  # tickers match case-insensitively
        ({"series": ["KXOTHER*"]}, {}, "series"),
        ({"events": ["*-26NOV02"]}, {}, "event"),
        ({"markets": ["*-M2", "*-M3"]}, {}, "market"),
        ({"kind": "combo"}, {}, "kind"),
        ({"min_contracts": 11}, {}, "contracts"),
        ({"max_contracts": 9}, {}, "contracts"),
        ({"max_contracts": 10}, {}, None),
        ({"max_notional_dollars": "9.99"}, {}, "notional"),
        ({"max_notional_dollars": "9.99"}, {"contracts_centi": None,
                                            "target_cost_micros": 9_990_000}, None),
        ({"min_time_to_close_ms": 500_001}, {}, "time_to_close"),
        ({"min_time_to_close_ms": 500_000}, {}, None),
        ({"market_statuses": ["closed"]}, {}, "market_status"),
        ({"requesters_deny": ["al*"]}, {}, "requester"),
        ({"requesters_allow": ["bob"]}, {}, "requester"),
        ({"requesters_allow": ["bob", "alice"]}, {}, None),
    ],
)
def test_match_rule(kw: dict[str, object], event: dict[str, object], expected: str | None) -> None:
    assert rule(**kw).matches(rfq(**event), MKT, 500_000) == expected


def test_match_rule_for_combos_and_unknown_markets() -> None:
    legs = (ComboLeg("E1", "M1", Side.YES), ComboLeg("E2", "M2", Side.NO),
            ComboLeg("E3", "M3", Side.YES))
    combo = rfq(market_ticker="KXMVECROSS-S1", legs=legs,
                mve_collection_ticker="KXMVECROSSCATEGORY-SHARD1-R")
    assert rule(kind="combo").matches(combo, None, None) is None
    assert rule(kind="single").matches(combo, None, None) == "kind"
    assert rule(kind="combo", max_legs=2).matches(combo, None, None) == "max_legs"
    assert rule(collections=["KXMVESPORTS*"]).matches(combo, None, None) == "collection"
    # Collections only filter combos; market-dependent filters wait for the metadata.
    assert rule(collections=["KXMVESPORTS*"], series=["KXNOPE"]).matches(rfq(), None, 0) is None
    assert rule(series=["KXNOPE"]).matches(rfq(), MKT, 0) == "series"


def test_route_picks_the_first_enabled_match() -> None:
    off = GOOD.replace("  - name: singles\n", "  - name: singles\n    enabled: false\n")
    cfg = parse_config(off)
    strategy, why = cfg.route(rfq(), MKT, 0)
    assert strategy is None
    assert why == "kind"  # the combos strategy rejected it on kind
    cfg = parse_config(GOOD)
    strategy, why = cfg.route(rfq(), MKT, 0)
    assert strategy is not None
    assert strategy.name == "singles"
    assert why is None


def test_programmatic_construction_validates_params() -> None:
    pricer = {"name": "book_mid", "params": {"edge_dollars": "0.05"}}
    strategies = [{"name": "x", "pricer": pricer}]
    cfg = QuoterConfig.model_validate({"version": 1, "strategies": strategies})
    assert cfg.strategies[0].pricer.params.edge_micros == 50_000  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="edge_dollars"):
        QuoterConfig.model_validate(
            {"version": 1, "strategies": [{"name": "x", "pricer": {
                "name": "book_mid", "params": {"edge_dollars": 0.05}}}]}
        )
    with pytest.raises(ValidationError, match="unknown strategy module"):
        QuoterConfig.model_validate({"version": 1, "strategies": [{"name": "x", "pricer": "zz"}]})


# --- schema, CLI and shipped configs ---------------------------------------------------------


def test_schema_has_human_units_and_module_params() -> None:
    schema = config_schema()
    defs = schema["$defs"]
    assert "min_spread_dollars" in defs["QuotingParams"]["properties"]
    assert defs["QuotingParams"]["properties"]["min_spread_dollars"]["default"] == "0.01"
    assert defs["QuotingParams"]["properties"]["min_spread_dollars"]["type"] == "string"
    assert "edge_dollars" in defs["book_mid.params"]["properties"]
    pricers = {o["properties"]["name"]["const"] for o in defs["PricerRef"]["anyOf"][:-1]}
    overlays = {o["properties"]["name"]["const"] for o in defs["OverlayRef"]["anyOf"][:-1]}
    assert {"book_mid", "combo", "fixed", "microprice"} <= pricers
    assert {"inventory_skew", "fee_edge", "size_edge", "requester_profile"} == overlays
    json.dumps(schema)


SHIPPED = sorted([REPO / "config" / "demo.yaml", *(REPO / "config" / "examples").glob("*.yaml")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    assert load_config(path).strategies


def test_cli_validate_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD, encoding="utf-8")
    bad.write_text(BAD, encoding="utf-8")
    assert main(["config", "validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{good}: OK (2 strategies, hash ")
    assert main(["config", "validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{good}: OK")
    assert out[1] == f"{bad}:4: strategies[0].match: min_contracts must be <= max_contracts"
    assert out[-1] == f"{bad}:22: risk.max_open_quotes: duplicate key"
    assert len(out) == 10
    assert main(["config", "schema"]) == 0
    assert "PricerRef" in json.loads(capsys.readouterr().out)["$defs"]


BAD_TEXTS = {
    # (file bytes, the line the error must name, a fragment of the message)
    "non-utf8": (GOOD.encode().replace(b"name: singles", b"name: singl\xffes"), 3, "not UTF-8"),
    "list-name": (GOOD.replace("name: singles", "name: [x]").encode(), 3, "valid string"),
    "deep": (("version: 1\nstrategies:\n  - name: " + "[" * 3000 + "]" * 3000 + "\n").encode(),
             3, "nested more than"),
    "deep-block": (("version: 1\nx-deep:\n" + "".join(
        "  " * i + f"k{i}:\n" for i in range(1, 200)) + "  " * 200 + "v: 1\n").encode(),
        66, "nested more than"),
}


@pytest.mark.parametrize("name", sorted(BAD_TEXTS))
def test_bad_config_text_is_a_config_error_with_file_and_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, line, fragment = BAD_TEXTS[name]
    path = tmp_path / "c.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"{path}:{line}: "), first
    assert fragment in str(info.value)
    # Hot reload keeps the running config and says why.
    path.write_text(GOOD, encoding="utf-8")
    good = load_config(path)
    path.write_bytes(raw)
    kept, why = reload(path, good)
    assert kept is good
    assert why is not None
    assert fragment in why
    # The CLI prints the same, without a traceback, and exits 1.
    assert main(["config", "validate", str(path)]) == 1
    out = capsys.readouterr()
    assert out.out.startswith(f"{path}:{line}: ")
    assert "Traceback" not in out.out + out.err


def test_missing_config_file_is_not_found_not_line_zero(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: not found"


def test_validate_reports_field_and_cross_field_errors_at_once() -> None:
    text = (
        "version: 1\n"
        "strategies:\n"
        "  - name: a\n"
        "    pricer: {name: book_mid}\n"
        "    lifecycle:\n"
        "      min_replace_interval_ms: -5\n"
        "      hvm_confirm_window_ms: 40000\n"
        "      confirm_window_ms: 30000\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml")
    assert str(info.value).splitlines() == [
        "c.yaml:5: strategies[0].lifecycle: hvm_confirm_window_ms must be <= confirm_window_ms",
        "c.yaml:6: strategies[0].lifecycle.min_replace_interval_ms: "
        "Input should be greater than or equal to 0",
    ]


def test_unknown_names_get_the_nearest_suggestion() -> None:
    text = (
        "version: 1\n"
        "strategies:\n"
        "  - name: a\n"
        "    pricer: {name: book_midd}\n"
        "    overlays: [fee_edgee]\n"
        "    quotign: {}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml")
    lines = str(info.value).splitlines()
    assert lines[0].startswith(
        "c.yaml:4: strategies[0].pricer.name: unknown strategy module 'book_midd'; "
        "did you mean 'book_mid'? available: ")
    assert lines[1].startswith(
        "c.yaml:5: strategies[0].overlays[0].name: unknown strategy module 'fee_edgee'; "
        "did you mean 'fee_edge'?")
    assert lines[2] == (
        "c.yaml:6: strategies[0].quotign: Extra inputs are not permitted; did you mean 'quoting'?")
    assert len(lines) == 3


def test_the_test_pricer_is_not_in_a_users_schema(tmp_path: Path) -> None:
    # A fresh process with the installed package only (not the test suite's sys.path).
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUOTER_", "PYTHONPATH"))}
    out = subprocess.run([sys.executable, "-m", "quoter.cli", "config", "schema"], cwd=tmp_path,
                         env=env, capture_output=True, check=True, timeout=60).stdout
    schema = json.loads(out)
    assert "book_mid.params" in schema["$defs"]
    assert "my_pricer.params" not in schema["$defs"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "install -q -e tests/thirdparty_pricer" not in makefile
