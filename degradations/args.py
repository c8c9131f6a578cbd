"""Constructor arguments that are "a value or a range", their validation, sampling and spec formatting.

Every operator argument that may vary per image is given either as one number (``quality=30``) or as a closed
range ``(low, high)`` (also written ``"10:70"`` or ``[10, 70]``) from which :func:`sample` draws uniformly per batch
element. Validation errors are :class:`ArgError` (a ``ValueError``) carrying the offending key, so
:func:`degradations.registry.parse` can name it as ``"jpeg.quality"``.

Spec strings use a tiny grammar shared with the registry: ``name(key=value,key=value)``; numbers are written in
their shortest round-trip form, ranges as ``low:high``, booleans as ``true``/``false`` and strings bare when that
is unambiguous, otherwise Python-quoted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import Tensor

Number = int | float
Range = tuple[float, float]

_BARE_STRING = re.compile(r"^[A-Za-z_][A-Za-z0-9_./\-]*$")
_INT = re.compile(r"^[+-]?\d+$")


class ArgError(ValueError):
    """A bad constructor argument; ``key`` names it (without the operator prefix)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def parse_number(text: str) -> Number | None:
    """``"30"`` → 30, ``"0.5"`` → 0.5, anything else → None."""
    text = text.strip()
    if _INT.match(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def as_range(
    key: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
    allow_range: bool = True,
) -> Range:
    """Validate a value-or-range argument and return it as a closed range ``(lo, hi)``.

    Args:
        key: argument name used in error messages.
        value: a number, a ``(lo, hi)`` tuple/list or a ``"lo:hi"`` string.
        low, high: inclusive bounds every value must respect (None: unbounded).
        integer: values must be whole numbers.
        allow_range: False for arguments that must be one value for the whole batch (e.g. a resize factor).

    Raises:
        ArgError: naming ``key`` when the value is malformed or out of bounds.
    """
    if isinstance(value, str):
        parts = value.split(":")
        nums = [parse_number(p) for p in parts]
        if len(parts) not in (1, 2) or any(n is None for n in nums):
            raise ArgError(key, f"expected a number or a range 'low:high', got {value!r}")
        value = nums[0] if len(nums) == 1 else tuple(nums)
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ArgError(key, f"a range needs exactly two values (low, high), got {value!r}")
        lo, hi = value
    else:
        lo = hi = value
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ArgError(key, f"expected a finite number, got {v!r}")
        if integer and float(v) != int(v):
            raise ArgError(key, f"expected a whole number, got {v!r}")
    if lo > hi:
        raise ArgError(key, f"range low {lo} exceeds high {hi}")
    if not allow_range and lo != hi:
        raise ArgError(key, f"must be a single value for the whole batch, got the range {lo}:{hi}")
    if low is not None and lo < low or high is not None and hi > high:
        raise ArgError(
            key, f"must lie within [{_fmt_bound(low)}, {_fmt_bound(high)}], got {format_value((lo, hi))}"
        )
    if integer:
        return int(lo), int(hi)
    return float(lo), float(hi)


def as_choice(key: str, value: object, choices: Sequence[str]) -> str:
    """Validate a string choice (numbers are compared by their text, so ``420`` matches ``"420"``)."""
    text = str(value)
    if text not in choices:
        raise ArgError(key, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return text


def as_bool(key: str, value: object) -> bool:
    """Validate a boolean (accepts the spec words ``true``/``false``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ArgError(key, f"expected true or false, got {value!r}")


def reject_unused(kind: str, **unused: object) -> None:
    """Raise for arguments that the chosen ``kind`` does not use (they would silently do nothing)."""
    for key, value in unused.items():
        if value is not None:
            raise ArgError(key, f"not used by kind={kind!r}")


def sample(rng: Range, batch: int, generator: torch.Generator | None, integer: bool = False) -> Tensor:
    """Draw ``batch`` values uniformly from the closed range; int64 when ``integer`` else float64.

    Always consumes ``batch`` uniforms from the generator, even for a fixed value, so that changing one argument
    from a value to a range (or back) never shifts the random stream seen by the others.
    """
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    lo, hi = rng
    if integer:
        return (lo + torch.floor(u * (hi - lo + 1))).clamp(max=hi).to(torch.int64)
    return lo + u * (hi - lo)


def draw_seeds(batch: int, generator: torch.Generator | None) -> Tensor:
    """Per-sample int64 seeds for draws that ``apply`` replays (noise, procedural layers)."""
    return torch.randint(0, 2**62, (batch,), generator=generator, dtype=torch.int64)


def _fmt_bound(v: float | None) -> str:
    return "inf" if v is None else format_value(v)


def format_value(value: object) -> str:
    """Spec text of one argument value (see the module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        lo, hi = value
        return format_value(lo) if lo == hi else f"{format_value(lo)}:{format_value(hi)}"
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
    text = str(value)
    ambiguous = text.lower() in ("true", "false") or parse_number(text) is not None
    return text if _BARE_STRING.match(text) and not ambiguous else repr(text)


def format_spec(name: str, args: Sequence[tuple[str, object]]) -> str:
    """``format_spec("jpeg", [("quality", (10, 70))])`` → ``"jpeg(quality=10:70)"``; no args → ``"jpeg"``."""
    if not args:
        return name
    return f"{name}(" + ",".join(f"{k}={format_value(v)}" for k, v in args) + ")"
