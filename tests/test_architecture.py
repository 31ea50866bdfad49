"""The house rules of the layout: no import cycles, dependencies one way, a small top level.

Imports are read from the source (every ``import`` statement: module level, inside functions,
under ``TYPE_CHECKING``), so a cycle hidden behind a lazy import is still a cycle here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("quoter", "strategies", "backtests")
#: The shared modules allowed at the top of ``quoter/``; everything else lives in a package.
TOP_LEVEL_MODULES = {"__init__", "cli", "clock", "errors", "ports"}
IO_LIBRARIES = {"asyncio", "httpx", "websockets", "socket", "sqlite3", "uvicorn", "starlette",
                "threading", "subprocess", "multiprocessing", "concurrent"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imported(path: Path, name: str) -> Iterator[str]:
    """Every module ``path`` (module ``name``) imports, as absolute dotted names."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"  # ``from pkg import module``


def _graph() -> dict[str, set[str]]:
    return {
        name: {m for m in _imported(path, name) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_the_real_imports() -> None:
    assert "quoter.engine.engine" in GRAPH["backtests.replay"]
    assert "quoter.runtime.kernel" in GRAPH["quoter.runtime.driver"]
    assert "quoter.runtime.kernel" in GRAPH["backtests.replay"]


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def _imports_of(prefix: str) -> Iterator[tuple[str, str]]:
    for name, targets in GRAPH.items():
        if name == prefix or name.startswith(prefix + "."):
            for target in sorted(targets):
                yield name, target


def _all_imports_of(prefix: str) -> Iterator[tuple[str, str]]:
    """Including libraries outside the project."""
    for name, path in MODULES.items():
        if name == prefix or name.startswith(prefix + "."):
            for target in _imported(path, name):
                yield name, target


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# (layer, what it must not import): DESIGN.md §2, dependency direction one way.
FORBIDDEN = [
    ("quoter.domain", ("quoter.engine", "quoter.runtime", "quoter.service", "quoter.kalshi",
                       "quoter.recording", "quoter.sim", "quoter.config", "strategies",
                       "backtests")),
    ("strategies", ("quoter.engine", "quoter.runtime", "quoter.service", "quoter.kalshi",
                    "quoter.recording", "quoter.sim", "quoter.config", "backtests")),
    ("quoter.engine", ("quoter.runtime", "quoter.service", "quoter.kalshi", "quoter.recording",
                       "quoter.sim", "backtests")),
    ("quoter.runtime", ("quoter.service", "quoter.sim", "quoter.recording", "backtests")),
    ("quoter.kalshi", ("quoter.engine", "quoter.runtime", "quoter.service", "quoter.recording",
                       "quoter.sim", "backtests")),
    ("quoter.recording", ("quoter.engine", "quoter.runtime", "quoter.service", "quoter.sim",
                          "backtests")),
    ("quoter.sim", ("quoter.engine", "quoter.runtime", "quoter.service", "backtests")),
    ("quoter", ("backtests",)),
    # Backtests compose their own world from the same parts, never the live transports.
    ("backtests", ("quoter.service", "quoter.kalshi.ws", "quoter.kalshi.rest",
                   "quoter.kalshi.source", "quoter.kalshi.adapter")),
]


@pytest.mark.parametrize(("layer", "forbidden"), FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_dependencies_run_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    bad = [(m, t) for m, t in _imports_of(layer) if _under(t, *forbidden)]
    assert bad == []


@pytest.mark.parametrize("layer", ["quoter.engine", "quoter.domain", "strategies"])
def test_the_pure_core_imports_no_io_library(layer: str) -> None:
    bad = [(m, t) for m, t in _all_imports_of(layer) if t.split(".")[0] in IO_LIBRARIES]
    assert bad == []


def test_the_runtime_kernel_imports_no_io_library() -> None:
    bad = [t for _, t in _all_imports_of("quoter.runtime.kernel")
           if t.split(".")[0] in IO_LIBRARIES]
    assert bad == []


def test_the_top_level_of_quoter_holds_packages_and_a_handful_of_shared_modules() -> None:
    top = ROOT / "quoter"
    modules = {p.stem for p in top.glob("*.py")}
    assert modules <= TOP_LEVEL_MODULES
    packages = {p.name for p in top.iterdir() if (p / "__init__.py").is_file()}
    assert {"domain", "engine", "runtime", "kalshi", "recording", "service", "observability",
            "sim", "config", "commands"} <= packages
