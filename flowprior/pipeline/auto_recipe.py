"""``--recipe auto``: which shipped restore recipe a kind of degradation gets."""

from __future__ import annotations

from pathlib import Path

from degradations import parse
from flowprior.auto_degradation import AUTO, ESTIMATED_OPERATORS
from flowprior.errors import UsageError

#: which shipped recipe ``--recipe auto`` picks, by the set of operators in the degradation spec
AUTO_RECIPES = {frozenset({"noise"}): "noise", frozenset({"jpeg"}): "jpeg", frozenset({"mask"}): "inpaint"}


#: what the embedded warm start was trained on: ``auto`` restores these with ``recipes/restore/fast.yaml``
FAST_OPERATORS = frozenset({"jpeg", "noise", "mask", "identity"})


def auto_recipe_name(spec: str, init: str | None = None, warm_start: bool = True) -> str:
    """The shipped restore recipe for this kind of degradation.

    ``fast`` (learned warm start + short MAP) when every operator is one the embedded warm start was trained on
    and no ``init`` other than a learned one is asked for; otherwise the cold recipe tuned for the degradation
    (``noise``, ``jpeg``, ``inpaint``, or ``default`` for compositions). ``warm_start=False`` always picks the
    cold one.
    """
    from flowprior.weights import EMBEDDED, warmstart_name

    if spec == AUTO:  # what the estimators can find
        names = ESTIMATED_OPERATORS
    else:
        try:
            op = parse(spec)
        except ValueError as error:
            raise UsageError(str(error)) from None
        names = frozenset(member.name for member in getattr(op, "members", [op]))
    if warm_start and init != "identity" and names <= FAST_OPERATORS and warmstart_name("irflow") in EMBEDDED:
        return "fast"
    return AUTO_RECIPES.get(names, "default")


def find_restore_recipe(name_or_path: str, degradation: str, init: str | None = None) -> Path:
    """A restore recipe's YAML: a path, a shipped recipe's name, or ``"auto"`` (:func:`auto_recipe_name`)."""
    from flowprior.recipe import find_recipe

    name = auto_recipe_name(degradation, init=init) if name_or_path == "auto" else name_or_path
    return find_recipe(name, "restore")
