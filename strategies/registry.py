"""The registry of pricing modules: built-ins by name, third parties through entry points.

YAML names a module (``pricer: {name: book_mid, params: {...}}``); the registry knows its kind
(pricer or overlay), its ``Params`` model (which validates ``params:``) and its factory. Built-in
modules are registered on first use; third-party packages expose a :class:`ModuleSpec` under
the ``quoter.strategies`` entry-point group and are loaded by :func:`load_entry_points`.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal, cast

from quoter.errors import ConfigError
from strategies.base import Overlay, Params, Pricer

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModuleSpec",
    "UnknownModuleError",
    "available",
    "build",
    "build_overlay",
    "build_pricer",
    "get_spec",
    "load_entry_points",
    "register",
]

ENTRY_POINT_GROUP = "quoter.strategies"

#: Built-in modules, each exposing ``SPEC`` (or ``SPECS``), imported on first registry use.
_BUILTIN_MODULES = ("strategies.book_mid", "strategies.microprice", "strategies.fixed",
                    "strategies.combo", "strategies.overlays")


@dataclass(frozen=True)
class ModuleSpec:
    """How to validate a module's params and build it."""

    name: str
    kind: Literal["pricer", "overlay"]
    params_model: type[Params]
    factory: Callable[[Params], Pricer | Overlay]


class UnknownModuleError(ConfigError, KeyError):
    """No module is registered under that name."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message; we want it readable.
        return str(self.args[0]) if self.args else ""


_specs: dict[str, ModuleSpec] = {}
_builtins_loaded = False
_entry_points_loaded = False


def _ensure_builtins() -> None:
    global _builtins_loaded  # noqa: PLW0603 - one-time lazy registration
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module_name in _BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        for spec in getattr(module, "SPECS", (getattr(module, "SPEC", None),)):
            if spec is not None:
                register(spec)


def register(spec: ModuleSpec) -> None:
    """Register ``spec`` under its name; re-registering the same spec is a no-op."""
    if not isinstance(spec, ModuleSpec):
        raise ConfigError(f"not a ModuleSpec: {spec!r}")
    if spec.kind not in ("pricer", "overlay"):
        raise ConfigError(f"module {spec.name!r}: kind must be 'pricer' or 'overlay'")
    if not (isinstance(spec.params_model, type) and issubclass(spec.params_model, Params)):
        raise ConfigError(f"module {spec.name!r}: params_model must subclass base.Params")
    existing = _specs.get(spec.name)
    if existing is not None and existing != spec:
        raise ConfigError(f"a strategy module named {spec.name!r} is already registered")
    _specs[spec.name] = spec


def available() -> list[str]:
    """Return the names of every registered module, sorted."""
    _ensure_builtins()
    return sorted(_specs)


def get_spec(name: str) -> ModuleSpec:
    """Return the spec registered as ``name``; raise ``UnknownModuleError`` listing the names."""
    _ensure_builtins()
    try:
        return _specs[name]
    except KeyError:
        near = difflib.get_close_matches(name, available(), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise UnknownModuleError(
            f"unknown strategy module {name!r}; {hint}available: {', '.join(available())}"
        ) from None


def load_entry_points() -> None:
    """Register every ``quoter.strategies`` entry point (each resolves to a ``ModuleSpec``)."""
    global _entry_points_loaded  # noqa: PLW0603 - idempotent one-time discovery
    _ensure_builtins()
    if _entry_points_loaded:
        return
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = ep.load()
        except Exception as exc:
            raise ConfigError(f"entry point {ep.name!r} ({ep.value}) failed: {exc}") from exc
        if not isinstance(spec, ModuleSpec):
            raise ConfigError(f"entry point {ep.name!r} ({ep.value}) is not a ModuleSpec")
        register(spec)
    _entry_points_loaded = True


def build(name: str, params: Params) -> Pricer | Overlay:
    """Build module ``name`` from already-validated ``params``."""
    spec = get_spec(name)
    if not isinstance(params, spec.params_model):
        raise ConfigError(
            f"module {name!r} needs {spec.params_model.__name__}, got {type(params).__name__}"
        )
    return spec.factory(params)


def build_pricer(name: str, params: Params) -> Pricer:
    """Build module ``name`` and check that it is a pricer."""
    if get_spec(name).kind != "pricer":
        raise ConfigError(f"module {name!r} is an overlay, not a pricer")
    return cast(Pricer, build(name, params))


def build_overlay(name: str, params: Params) -> Overlay:
    """Build module ``name`` and check that it is an overlay."""
    if get_spec(name).kind != "overlay":
        raise ConfigError(f"module {name!r} is a pricer, not an overlay")
    return cast(Overlay, build(name, params))
