"""Per-pixel mean and variance of samples as they arrive (Welford's update, float64), and their tile blend.

Blending tiles: a pixel in an overlap is a mixture of its tiles' posteriors with the blending weights ``w_i``
(which sum to 1), so its mean is ``Σ w_i m_i`` and its variance ``Σ w_i (v_i + m_i²) - mean²``. The image
blender (:class:`flowprior.tiling.Blender`) blends the mean and the second moment ``v + m²`` with the same
weights as the MAP's tiles; :func:`variance_from_moments` finishes the mixture variance.
"""

from __future__ import annotations

import torch
from torch import Tensor


class RunningMoments:
    """Mean and variance over samples of a fixed shape, updated one sample at a time in float64.

    Example:
        >>> m = RunningMoments()
        >>> for value in (1.0, 2.0, 4.0):
        ...     m.add(torch.tensor([value]))
        >>> m.mean.item(), m.variance.item()
        (2.3333333333333335, 1.5555555555555554)
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean: Tensor | None = None
        self._m2: Tensor | None = None

    def add(self, sample: Tensor) -> None:
        x = sample.detach().to(torch.float64)
        self.count += 1
        if self._mean is None:
            self._mean, self._m2 = x.clone(), torch.zeros_like(x)
            return
        delta = x - self._mean
        self._mean += delta / self.count
        self._m2 += delta * (x - self._mean)

    @property
    def mean(self) -> Tensor:
        if self._mean is None:
            raise ValueError("no samples added")
        return self._mean

    @property
    def variance(self) -> Tensor:
        """The population variance (divides by the count): the spread of the samples themselves."""
        return self._m2 / self.count if self._m2 is not None else self.mean


def second_moment(mean: Tensor, variance: Tensor) -> Tensor:
    """``E[x²] = v + m²``: the quantity that blends linearly across tiles."""
    return variance + mean * mean


def variance_from_moments(mean: Tensor, second: Tensor) -> Tensor:
    """The blended (mixture) variance ``E[x²] - mean²``, floored at 0 against rounding."""
    return (second - mean * mean).clamp(min=0)
