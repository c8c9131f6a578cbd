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

#: linear damage the learned warm start never saw: any spec with one of these gets its recipe (the ``inverse``
#: warm start, bounded in time), whatever else it holds; a downsampling decides first. On validation crops the MAP
#: helped only with noise (blur σ 2: -0.02 dB without noise, +0.2 with σ 2; x2: -0.01 dB without, +0.08 with σ 5),
#: so the ``-noise`` recipe, with MAP steps, is the one for a spec with noise.
LINEAR_RECIPES = (("downsample", "superres"), ("blur", "deblur"))


def auto_recipe_name(spec: str, init: str | None = None, warm_start: bool = True) -> str:
    """The shipped restore recipe for this kind of degradation.

    ``fast`` (learned warm start + short MAP) when every operator is one the embedded warm start was trained on
    and no ``init`` other than a learned one is asked for; otherwise the cold recipe tuned for the degradation
    (``noise``, ``jpeg``, ``inpaint``, or ``default`` for compositions). ``warm_start=False`` always picks the
    cold one. A spec with a downsampling or a blur gets ``superres`` or ``deblur``, ``superres-noise`` or
    ``deblur-noise`` with noise (:data:`LINEAR_RECIPES`): the cold ``default`` recipe took over 15 minutes on a
    blurred 256² crop.
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
    for operator, recipe in LINEAR_RECIPES:
        if operator in names:
            return f"{recipe}-noise" if "noise" in names else recipe
    if warm_start and init != "identity" and names <= FAST_OPERATORS and warmstart_name("irflow") in EMBEDDED:
        return "fast"
    return AUTO_RECIPES.get(names, "default")


def find_restore_recipe(name_or_path: str, degradation: str, init: str | None = None) -> Path:
    """A restore recipe's YAML: a path, a shipped recipe's name, or ``"auto"`` (:func:`auto_recipe_name`)."""
    from flowprior.recipe import find_recipe

    name = auto_recipe_name(degradation, init=init) if name_or_path == "auto" else name_or_path
    return find_recipe(name, "restore")
