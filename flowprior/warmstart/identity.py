"""The learning-free warm start: fill missing pixels from their surroundings, then undo what has a closed form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from degradations import Degradation
from flowprior.warmstart.base import Initializer, register_initializer


def box_mean(x: Tensor, radius: int) -> Tensor:
    """The mean over each pixel's ``(2 radius + 1)²`` window, the image extended by replication: ``avg_pool2d``
    of the padded image, from a float64 summed-area table, so a wide window costs no more than a narrow one."""
    size = 2 * radius + 1
    table = F.pad(F.pad(x, [radius] * 4, mode="replicate").to(torch.float64).cumsum(-1).cumsum(-2), [1, 0, 1, 0])
    sums = table[..., size:, size:] - table[..., :-size, size:] - table[..., size:, :-size] + table[..., :-size, :-size]
    return (sums / size**2).to(x.dtype)


def fill_missing_pixels(y: Tensor, mask: Tensor, scales: int = 8) -> Tensor:
    """Fill pixels where ``mask == 0`` by normalized convolution over a pyramid of growing blur radii.

    Each pass averages the known pixels around a hole (weights = mask); holes larger than one pass's reach are
    filled by the next, coarser pass. Observed pixels are returned unchanged.

    Shape:
        y: (B, C, H, W); mask: (B, 1, H, W) with 1 = observed. Output: like y.
    """
    filled = y.clone()
    known = mask.to(y.dtype).clone()
    for level in range(scales):
        if bool((known > 0.999).all()):
            break
        radius = 2 ** level
        numerator, denominator = box_mean(filled * known, radius), box_mean(known, radius)
        estimate = numerator / denominator.clamp(min=1e-8)
        newly = (denominator > 1e-6) & (known < 0.999)
        filled = torch.where(newly, estimate, filled)
        known = torch.where(newly, torch.ones_like(known), known)
    still_missing = known < 0.999
    if still_missing.any():  # nothing observed anywhere near: use the image mean
        mean = (y * mask).flatten(2).sum(2) / mask.flatten(2).sum(2).clamp(min=1)
        filled = torch.where(still_missing, mean[..., None, None].expand_as(filled), filled)
    return torch.where(mask > 0.5, y, filled)


@register_initializer("identity")
class IdentityInitializer(Initializer):
    """x0 = the degradation's pseudo-inverse of y with missing pixels filled (for most operators: y itself)."""

    name = "identity"

    def forward(self, y: Tensor, degradation: Degradation, params: dict[str, Tensor]) -> Tensor:
        mask = degradation.observed_mask(params)
        x0 = y if mask is None else fill_missing_pixels(y, mask.to(y.dtype))
        return degradation.pseudo_inverse(x0, params).clamp(0, 1)
