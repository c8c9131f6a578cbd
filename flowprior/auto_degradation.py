"""``--degradation auto``: what the estimators found in an image, as the restore's operator, parameters and mask.

The estimators (:mod:`flowprior.estimate`) only ever find holes and scratches, Gaussian-like noise and a JPEG
history, all of which the embedded warm start was trained on, so an ``auto`` restore takes the fast recipe. A value
the user sets (``--set noise.sigma=5``) or a mask the user gives wins over the estimate; the sidecar records every
estimate with its confidence (``estimated``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flowprior.estimate import estimate_degradation
from flowprior.io import write_image

#: the ``--degradation`` value that asks for estimation
AUTO = "auto"
#: every operator an estimate can contain (:func:`flowprior.estimate.report.estimate_degradation`)
ESTIMATED_OPERATORS = frozenset({"mask", "noise", "jpeg", "identity"})


@dataclass
class FoundDegradation:
    """An estimate made ready for a restore: ``spec`` and ``params`` for the operator parser, the observed
    ``mask`` (1, 1, H, W) (1 = observed) or None, and the JSON-ready ``report`` of every estimate."""

    spec: str
    params: dict[str, Any]
    mask: Tensor | None
    report: dict[str, Any]


def find_degradation(image: Tensor, path: str | Path | None = None) -> FoundDegradation:
    """Estimate the damage of ``image`` ((1, C, H, W) in [0, 1]); ``path``: its file (a JPEG's own tables)."""
    found = estimate_degradation(image, path)  # its params never hold "mask.*": the mask is the tensor
    report = {**found.report, "confidence": found.confidence}
    return FoundDegradation(found.spec, dict(found.params), found.mask, report)


def with_user_values(found: FoundDegradation, params: dict[str, Any], mask_given: bool) -> FoundDegradation:
    """The estimate with the user's own values on top: a set parameter replaces its estimate, a given mask the
    detected one (the spec then gains ``mask`` from the restore path itself)."""
    members = [m for m in found.spec.split("+") if not (mask_given and m == "mask")]
    spec = "+".join(members) or "identity"
    return FoundDegradation(spec, {**found.params, **params}, None if mask_given else found.mask, found.report)


def bind_estimate(recipe, image: Tensor, path: str | Path | None, mask_given: bool) -> FoundDegradation:
    """Estimate ``image``'s damage and make it ``recipe``'s degradation and params (the user's values on top)."""
    found = with_user_values(find_degradation(image, path), recipe.params, mask_given)
    recipe.degradation, recipe.params = found.spec, found.params
    return found


def write_mask(mask: Tensor, path: Path) -> Path:
    """The detected mask as an 8-bit PNG (255 = observed) that ``--mask`` and a replay read back."""
    write_image(path, (mask > 0.5).to(torch.float32).expand(-1, 1, -1, -1), bit_depth=8)
    return path
