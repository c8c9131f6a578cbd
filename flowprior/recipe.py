"""Typed recipes: YAML files -> dataclasses, with dotted ``--set key=value`` overrides checked against the fields.

Unknown keys and wrongly typed values are errors that name the key. Nothing from YAML is ever instantiated as code.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from flowprior.errors import UsageError

T = TypeVar("T")


class _ScalarLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style scalars: ``5:15`` stays a string (YAML 1.1 reads 315, base 60), ``1e-3`` is a
    float (1.1 wants a dot), only ``true``/``false`` are booleans (1.1 adds ``yes``/``on``...), and numbers with a
    leading zero such as ``017`` stay strings (1.1 reads octal 15)."""


_TAGS_REPLACED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_ScalarLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _TAGS_REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ScalarLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_ScalarLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_ScalarLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        # a dot or an exponent is required, so that 017 (no int either: leading zero) stays a string
        r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def add_set_option(parser: argparse.ArgumentParser, what: str) -> None:
    """Add the repeatable ``--set KEY=VALUE`` option that :func:`parse_set_options` reads."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"set {what} (repeatable); VALUE is read as YAML: 30 is an int, 0.5 a float, 5:15 a "
                        "string")


def parse_set_options(items: Sequence[str] | None) -> dict[str, Any]:
    """Parse repeated ``--set key=value`` options into a dict.

    Values are read as YAML (``yaml.load`` with a SafeLoader subclass whose scalars follow YAML 1.2): ``30`` → 30,
    ``0.5`` → 0.5, ``1e-3`` → 0.001, ``true`` → True, ``null`` → None, ``[10, 70]`` → [10, 70], while ``5:15``,
    ``yes`` and ``017`` stay strings.

    Raises:
        UsageError: for a missing ``=``, an empty key or value, a key given twice, or unparsable YAML.

    Example:
        >>> parse_set_options(["jpeg.quality=30", "noise.sigma=5:15", "blur.size=1e-3"])
        {'jpeg.quality': 30, 'noise.sigma': '5:15', 'blur.size': 0.001}
    """
    values: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        if not text.strip():
            raise UsageError(f"--set {key}: empty value")
        if key in values:
            raise UsageError(f"--set {key} is given twice")
        try:
            values[key] = yaml.load(text, Loader=_ScalarLoader)  # a SafeLoader subclass: safe
        except yaml.YAMLError as error:
            reason = str(error).splitlines()[0]
            raise UsageError(f"--set {key}: cannot parse {text!r} ({reason})") from None
    return values


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.width=64"`` -> ``("model.width", 64)``, with the scalar rules of :func:`parse_set_options`."""
    return next(iter(parse_set_options([text]).items()))


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except UsageError as error:
                errors.append(str(error))
        raise UsageError(errors[0] if errors else f"{key}: bad value {value!r}")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise UsageError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise UsageError(f"{key}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UsageError(f"{key}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise UsageError(f"{key}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UsageError(f"{key}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict; unknown keys and bad types raise :class:`UsageError`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise UsageError(f"unknown recipe key {prefix}{unknown[0]} (valid: {', '.join(sorted(fields))})")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise UsageError(f"{prefix.rstrip('.') or cls.__name__}: {error}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """Dataclass -> plain nested dict (tuples become lists), suitable for YAML/JSON."""
    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(obj))


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Write ``value`` at dotted ``key`` into a nested dict, creating sections as needed."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"override {key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def load_recipe(cls: type[T], path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> T:
    """Load a recipe YAML (or the defaults when ``path`` is None) and apply dotted overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"recipe not found: {path}")
        try:
            loaded = yaml.load(path.read_text(), Loader=_ScalarLoader) or {}  # a SafeLoader subclass: no code runs
        except yaml.YAMLError as error:  # malformed YAML, or a tag such as !!python/object that SafeLoader refuses
            reason = " ".join(str(error).split())
            raise UsageError(f"recipe {path} is not a plain YAML recipe: {reason}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"recipe {path} must be a mapping at the top level")
        data = loaded
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides or [])
    for key, value in items:
        set_dotted(data, key, value)
    return from_dict(cls, data)


def find_recipe(name_or_path: str | Path | None, kind: str) -> Path | None:
    """A recipe YAML by path, or by name among the shipped ``recipes/<kind>/`` (installed with the package)."""
    if name_or_path is None:
        return None
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = Path(__file__).resolve().parent / "recipes" / kind / f"{path.stem if path.suffix else path.name}.yaml"
    if path.suffix in ("", ".yaml", ".yml") and len(path.parts) == 1 and shipped.is_file():
        return shipped
    available = sorted(p.stem for p in shipped.parent.glob("*.yaml")) if shipped.parent.is_dir() else []
    raise UsageError(f"recipe not found: {name_or_path} (shipped {kind} recipes: {', '.join(available) or 'none'})")
