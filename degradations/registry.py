"""Operator registry and the spec parser: ``parse("jpeg(quality=30)+noise+mask", {"noise.sigma": "5:15"})``.

Spec grammar::

    spec  := term ("+" term)*
    term  := NAME [ "(" [ key "=" value ("," key "=" value)* ] ")" ]
    value := number | low ":" high | true | false | bare-word | 'quoted' | "quoted"

Terms apply left to right. Arguments may also come from a ``params`` dict with dotted keys, ``"jpeg.quality"``;
when an operator appears more than once its later occurrences are ``"noise#2"``, ``"noise#3"``… (the same keys
:class:`~degradations.base.Chain` uses for its params). A dict value overrides an inline one. Dict values may be
numbers, ``"lo:hi"`` strings or ``(lo, hi)`` tuples/lists. Every error is a ``ValueError`` naming the operator or
the dotted key at fault.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Mapping
from typing import Generic, TypeVar

from degradations.args import ArgError, parse_number
from degradations.base import Chain, Degradation, member_keys

T = TypeVar("T")

class Registry(Generic[T]):
    """Names → entries (classes or factories) of one kind, filled by decorators when their modules are imported.

    One pattern for everything looked up by name: operators here, and any other kind of plug-in (warm starts,
    initializers) that wants the same rules: a name is an identifier, taken once; lookups of an unknown name list
    the valid ones.

    Args:
        kind: what the entries are, for messages (``"degradation"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name`` and return it (so it works as the body of a decorator).

        Raises:
            ValueError: when the name is empty, not an identifier, or already taken.
        """
        if not name or not name.isidentifier():
            raise ValueError(f"{_label(entry)}: a {self.kind} name must be a non-empty identifier, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered by {_label(self._entries[name])}")
        self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._entries)

    def find(self, name: str) -> T | None:
        """The entry under ``name``, or None."""
        return self._entries.get(name)

    def get(self, name: str) -> T:
        """The entry under ``name``.

        Raises:
            ValueError: listing the valid names when ``name`` is unknown.
        """
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")
        return self._entries[name]

    def copy(self) -> Registry[T]:
        """An independent registry with the same entries (tests register throw-away entries in one)."""
        other = Registry(self.kind)
        other._entries = dict(self._entries)
        return other


def _label(entry: object) -> str:
    return getattr(entry, "__name__", repr(entry))


OPERATORS: Registry[type[Degradation]] = Registry("degradation")


def register(cls: type[Degradation]) -> type[Degradation]:
    """Class decorator: make an operator available to :func:`parse` under ``cls.name``.

    Raises:
        ValueError: when the name is empty, not an identifier, or already taken.
    """
    return OPERATORS.add(getattr(cls, "name", ""), cls)


def available() -> list[str]:
    """Sorted names of all registered operators."""
    return OPERATORS.names()


def get(name: str) -> type[Degradation]:
    """The operator class registered under ``name``.

    Raises:
        ValueError: listing the valid names when ``name`` is unknown.
    """
    return OPERATORS.get(name)


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts, depth, quote, escaped, start = [], 0, "", False, 0
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' in degradation spec {text!r}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth or quote:
        raise ValueError(f"unbalanced parentheses or quotes in degradation spec {text!r}")
    parts.append(text[start:])
    return parts


def _convert(text: str) -> object:
    """Spec text of one value → Python value (see the module grammar)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return ast.literal_eval(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    number = parse_number(text)
    if number is not None:
        return number
    if ":" in text:
        lo, _, hi = text.partition(":")
        lo_n, hi_n = parse_number(lo), parse_number(hi)
        if lo_n is not None and hi_n is not None:
            return (lo_n, hi_n)
    return text


def _normalize(value: object) -> object:
    """Dict value → the same kinds of Python values inline text gives."""
    if isinstance(value, str):
        return _convert(value) if value.strip() else value
    if isinstance(value, list):
        return tuple(value)
    return value


def _parse_term(term: str) -> tuple[str, dict[str, object]]:
    term = term.strip()
    if not term:
        raise ValueError("empty term in degradation spec (stray '+'?)")
    name, paren, rest = term.partition("(")
    name = name.strip()
    kwargs: dict[str, object] = {}
    if paren:
        if not rest.rstrip().endswith(")"):
            raise ValueError(f"degradation term {term!r} must end with ')'")
        body = rest.rstrip()[:-1]
        for item in _split_top(body, ","):
            if not item.strip():
                continue
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key.isidentifier():
                raise ValueError(f"{name}: expected key=value, got {item.strip()!r}")
            if key in kwargs:
                raise ValueError(f"{name}.{key}: given twice")
            kwargs[key] = _convert(value)
    return name, kwargs


def _arg_names(cls: type[Degradation]) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind is p.KEYWORD_ONLY]


def _build(cls: type[Degradation], key: str, kwargs: dict[str, object]) -> Degradation:
    valid = _arg_names(cls)
    for k in kwargs:
        if k not in valid:
            raise ValueError(
                f"{key}.{k}: unknown argument of {cls.name!r}; valid: {', '.join(valid) or '(none)'}"
            )
    try:
        return cls(**kwargs)
    except ArgError as err:
        raise ValueError(f"{key}.{err}") from err


def parse(spec: str, params: Mapping[str, object] | None = None) -> Degradation:
    """Build an operator (one, or a :class:`~degradations.base.Chain` of several) from a spec string.

    Args:
        spec: e.g. ``"jpeg+noise+mask"`` or ``"jpeg(quality=10:70)+noise(kind=gaussian,sigma=5)"``.
        params: optional dotted overrides, e.g. ``{"jpeg.quality": 30, "noise.sigma": "5:15"}``.

    Returns:
        The operator; ``parse(op.spec())`` gives an operator with an equal spec.

    Raises:
        ValueError: unknown operator (listing the valid names), unknown key, or bad value (naming the key).

    Example:
        >>> parse("jpeg(quality=30)+noise", {"noise.sigma": "5:15"}).spec()
        'jpeg(quality=30,subsampling=420,hardness=8)+noise(kind=gaussian,sigma=5:15)'
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"degradation spec must be a non-empty string, got {spec!r}")
    terms = [_parse_term(t) for t in _split_top(spec, "+")]
    classes = [get(name) for name, _ in terms]
    keys = member_keys([name for name, _ in terms])
    overrides: dict[str, dict[str, object]] = {k: {} for k in keys}
    for dotted, value in (params or {}).items():
        prefix, dot, arg = str(dotted).partition(".")
        if not dot or not arg:
            raise ValueError(f"{dotted}: params keys must be '<operator>.<argument>', e.g. 'jpeg.quality'")
        if prefix not in overrides:
            raise ValueError(
                f"{dotted}: no operator {prefix!r} in spec {spec!r} (operators: {', '.join(keys)})"
            )
        overrides[prefix][arg] = _normalize(value)
    ops = [_build(cls, key, {**kw, **overrides[key]}) for cls, key, (_, kw) in zip(classes, keys, terms)]
    return ops[0] if len(ops) == 1 else Chain(ops)
