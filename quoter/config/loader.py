"""Loading strategy configs: YAML with line numbers, validation all or nothing, hashes, schema.

Loading is all-or-nothing: :func:`load_config` either returns a whole valid
:class:`~quoter.config.model.QuoterConfig` or raises ``ConfigError`` whose message lists every
problem, one per line, as ``FILE:LINE: field.path: message``.

YAML anchors and merge keys work (``<<: *defaults``); top-level keys starting with ``x-`` are
ignored so they can hold the anchored fragments.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from quoter.config.model import (
    _DUPLICATE_TYPE,
    _FAILED,
    _FAILED_TYPE,
    QuoterConfig,
)
from quoter.domain.money import (
    MoneyError,
    format_dollars,
    format_fp,
)
from quoter.errors import ConfigError
from strategies import registry

__all__ = [
    "config_hash", "config_schema", "load_config", "parse_config", "read_config_text", "reload",
]


# --- YAML with line numbers ---------------------------------------------------------------------

_Path = tuple[str | int, ...]
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_NODES = 200_000
_MAX_DEPTH = 64


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than ``_MAX_DEPTH`` before composing (PyYAML composes recursively).

    The event parser is iterative, so walking its events cannot overflow the stack; a config
    is never nested more than a handful of levels, and 3,000 ``[`` would be a RecursionError.
    """
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > _MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else 1
                raise ConfigError(f"{source}:{line}: nested more than {_MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _YamlDoc:
    """A YAML document as plain data plus the line of every path in it."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines: dict[_Path, int] = {}
        self.errors: list[tuple[int, str]] = []
        self._constructor = yaml.SafeLoader("")
        self._nodes = 0
        try:
            _check_depth(text, source)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{source}:{line}: invalid YAML: {problem}") from None
        if node is None:
            raise ConfigError(f"{source}:1: the file is empty")
        self.data = self._convert(node, ())

    def _error(self, node: yaml.Node, path: _Path, message: str) -> None:
        self.errors.append((node.start_mark.line + 1, f"{_fmt(path)}: {message}"))

    def _convert(self, node: yaml.Node, path: _Path) -> Any:
        self._nodes += 1
        if self._nodes > _MAX_NODES:
            # Aliases can expand exponentially ("billion laughs"); a config is never this big.
            line = node.start_mark.line + 1
            raise ConfigError(f"{self.source}:{line}: the document is too large")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: _Path) -> Any:
        if node.tag in (_FLOAT_TAG, _TIMESTAMP_TAG):
            # Keep the source text: money is parsed exactly from it, never through a float.
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self._error(node, path, f"invalid YAML value: {getattr(exc, 'problem', None) or exc}")
            return None

    def _mapping(self, node: yaml.MappingNode, path: _Path) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                # "<<: *defaults" (or a list of them): explicit keys win over merged ones.
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [
                    value_node
                ]
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        self._error(source, path, "<< must merge a mapping")
                        continue
                    for k, v in self._mapping(source, path).items():
                        merged.setdefault(k, v)
                continue
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self._error(key_node, path, "keys must be strings")
                continue
            if key in out:
                self._error(key_node, (*path, key), "duplicate key")
                continue
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = self._convert(value_node, (*path, key))
        for k, v in merged.items():
            out.setdefault(k, v)
        return out

    def line_of(self, loc: Sequence[str | int]) -> int:
        """Return the line of the deepest known prefix of ``loc``."""
        path = tuple(loc)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


def _fmt(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top)"


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def _prevalidate_modules(
    data: Any, context: Mapping[str, Any]
) -> tuple[Any, list[tuple[_Path, str]]]:
    """Validate every pricer/overlay ``params`` with its module's model, keeping field paths.

    Returns the data with validated ``Params`` in place (or a placeholder where validation
    failed) and the errors found, each as ``(path, message)``.
    """
    errors: list[tuple[_Path, str]] = []
    if not isinstance(data, Mapping) or not isinstance(data.get("strategies"), list):
        return data, errors

    def resolve(ref: Any, path: _Path, kind: str) -> Any:
        if isinstance(ref, str):
            ref = {"name": ref}
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
            return ref  # let the model report the shape error
        try:
            spec = registry.get_spec(ref["name"])
        except ConfigError as exc:
            errors.append(((*path, "name"), str(exc)))
            return _FAILED
        if spec.kind != kind:
            errors.append(((*path, "name"), f"{spec.name!r} is {_a(spec.kind)}, not {_a(kind)}"))
            return _FAILED
        raw = ref.get("params", {})
        try:
            params = spec.params_model.model_validate({} if raw is None else raw, context=context)
        except ValidationError as exc:
            errors.extend(
                ((*path, "params", *e["loc"]), _message(e)) for e in exc.errors()
            )
            return _FAILED
        except (OSError, ValueError) as exc:
            errors.append(((*path, "params"), str(exc)))
            return _FAILED
        return {**ref, "params": params}

    names: set[str] = set()
    for i, raw in enumerate(data["strategies"]):
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if not isinstance(name, str):
            continue  # the model reports a missing or non-string name
        if name in names:
            errors.append((("strategies", i, "name"), f"strategy name {name!r} is used twice"))
        names.add(name)
    strategies = []
    for i, raw in enumerate(data["strategies"]):
        if not isinstance(raw, Mapping):
            strategies.append(raw)
            continue
        s = dict(raw)
        if "pricer" in s:
            s["pricer"] = resolve(s["pricer"], ("strategies", i, "pricer"), "pricer")
        if isinstance(s.get("overlays"), list):
            s["overlays"] = [
                resolve(o, ("strategies", i, "overlays", j), "overlay")
                for j, o in enumerate(s["overlays"])
            ]
        strategies.append(s)
    return {**data, "strategies": strategies}, errors


_MAX_ROUNDS = 4


def _without(
    data: Any, locs: Sequence[tuple[str | int, ...]]
) -> tuple[Any, list[tuple[str | int, ...]]]:
    """Return a copy of ``data`` without the mapping keys at ``locs`` (and which were dropped)."""
    dropped: list[tuple[str | int, ...]] = []
    out = copy.deepcopy(data, {id(_FAILED): _FAILED})  # the placeholder is compared by identity
    for loc in locs:
        node = out
        for part in loc[:-1]:
            in_dict = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if in_dict or in_list:
                node = node[part]
            else:
                node = None
                break
        if loc and isinstance(node, dict) and loc[-1] in node:
            del node[loc[-1]]
            dropped.append(loc)
    return out, dropped


def _explain(err: Mapping[str, Any]) -> str:
    """The error message, with the nearest known key for an unknown one."""
    msg = _message(err)
    loc = err.get("loc", ())
    if err.get("type") == "extra_forbidden" and loc and isinstance(loc[-1], str):
        near = difflib.get_close_matches(loc[-1], sorted(_known_keys()), n=1)
        if near:
            msg += f"; did you mean {near[0]!r}?"
    return msg


@functools.cache
def _known_keys() -> frozenset[str]:
    """Every key a config file may use, at any level (from the JSON Schema)."""
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                keys.update(k for k in props if isinstance(k, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config_schema())
    return frozenset(keys)


def _validate(doc: _YamlDoc, config_dir: Path) -> QuoterConfig:
    context = {"config_dir": config_dir}
    data = doc.data
    if isinstance(data, dict):
        # Top-level "x-..." keys hold YAML anchors for reuse ("<<: *name"); they are not config.
        data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    data, module_errors = _prevalidate_modules(data, context)
    located: list[tuple[int, str]] = [
        *doc.errors,
        *((doc.line_of(loc), f"{_fmt(loc)}: {msg}") for loc, msg in module_errors),
    ]
    config: QuoterConfig | None = None
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    removed: set[tuple[str | int, ...]] = set()
    # Cross-field rules run only once a model's own fields are valid. To report them in the
    # same pass, drop the keys already in error and validate again (a few rounds at most);
    # a "missing" error for a dropped key is not news.
    for _round in range(_MAX_ROUNDS):
        try:
            config = QuoterConfig.model_validate(data, context=context)
            break
        except ValidationError as exc:
            fresh = []
            for err in exc.errors():
                loc = tuple(err["loc"])
                if err["type"] in (_FAILED_TYPE, _DUPLICATE_TYPE):
                    continue  # reported by the pre-pass, with a better location
                if err["type"] == "missing" and loc in removed:
                    continue
                key = (loc, _message(err))
                if key in seen:
                    continue
                seen.add(key)
                fresh.append(err)
                located.append((doc.line_of(loc), f"{_fmt(loc)}: {_explain(err)}"))
            drops = [tuple(e["loc"]) for e in fresh if e["type"] != "missing"]
            data, dropped = _without(data, drops)
            if not dropped:
                break
            removed.update(dropped)
        except ConfigError as exc:  # e.g. an unknown module name reached a model validator
            located.append((1, str(exc)))
            break
    if located:
        config = None
    lines = [f"{doc.source}:{line}: {text}" for line, text in sorted(located, key=lambda t: t[0])]
    if lines or config is None:
        raise ConfigError("\n".join(lines or [f"{doc.source}:1: invalid configuration"]))
    return config


def parse_config(
    text: str, source: str = "<string>", *, base_dir: Path | None = None
) -> QuoterConfig:
    """Parse and validate a YAML config from ``text``; raise ``ConfigError`` listing every error."""
    registry.load_entry_points()
    doc = _YamlDoc(text, source)
    return _validate(doc, base_dir if base_dir is not None else Path.cwd())


def read_config_text(path: Path) -> str:
    """Read a config file as UTF-8; a missing, unreadable or non-UTF-8 file is a ``ConfigError``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None


def load_config(path: Path) -> QuoterConfig:
    """Load and validate a YAML config file (all or nothing)."""
    path = Path(path)
    return parse_config(read_config_text(path), str(path), base_dir=path.parent)


def reload(path: Path, current: QuoterConfig) -> tuple[QuoterConfig, str | None]:
    """Return ``(new config, None)`` if ``path`` is valid, else ``(current, why)``."""
    try:
        return load_config(path), None
    except ConfigError as exc:
        return current, str(exc)


def config_hash(cfg: QuoterConfig) -> str:
    """Return a stable SHA-256 hex digest of a config's validated content."""
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _dollar_text(micros: int) -> str:
    for places in range(2, 7):
        try:
            return format_dollars(micros, places)
        except MoneyError:
            continue
    return format_dollars(micros, 6)


def _human_defaults(node: Any) -> None:
    """Rewrite integer defaults of ``*_dollars``/``*_contracts`` keys in their YAML units."""
    if isinstance(node, list):
        for item in node:
            _human_defaults(item)
        return
    if not isinstance(node, dict):
        return
    for key, prop in (node.get("properties") or {}).items():
        if not isinstance(prop, dict) or not isinstance(prop.get("default"), int):
            continue
        if key.endswith("_dollars"):
            prop["default"] = _dollar_text(prop["default"])
        elif key.endswith("_contracts"):
            prop["default"] = format_fp(prop["default"])
    for value in node.values():
        _human_defaults(value)


def config_schema() -> dict[str, Any]:
    """Return the JSON Schema of the YAML file (human-unit keys; module params per name)."""
    registry.load_entry_points()
    schema = QuoterConfig.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    refs: dict[str, list[dict[str, Any]]] = {"pricer": [], "overlay": []}
    for name in registry.available():
        spec = registry.get_spec(name)
        sub = spec.params_model.model_json_schema(
            by_alias=True, mode="validation", ref_template="#/$defs/{model}"
        )
        defs.update(sub.pop("$defs", {}))
        key = f"{name}.params"
        defs[key] = sub
        refs[spec.kind].append(
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"const": name},
                    "params": {"$ref": f"#/$defs/{key}"},
                },
            }
        )
    for kind, options in refs.items():
        names = [o["properties"]["name"]["const"] for o in options]
        defs[f"{kind.capitalize()}Ref"] = {
            "description": f"a {kind} module: {{name, params}} or just its name",
            "anyOf": [*options, {"enum": names}],
        }
    defs.pop("ModuleRef", None)
    defs.pop("Params", None)
    _human_defaults(schema)
    schema["patternProperties"] = {"^x-": {"description": "ignored: holds YAML anchors"}}
    props = defs["StrategyConfig"]["properties"]
    props["pricer"] = {"$ref": "#/$defs/PricerRef"}
    props["overlays"] = {
        "type": "array", "items": {"$ref": "#/$defs/OverlayRef"}, "default": [],
    }
    return schema
