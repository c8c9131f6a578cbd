"""The contract between a flow prior and everything that uses it (solver, restore, training).

Conventions:

* Images are float (B, C, H, W) in [0, 1]. The map to model space and n-bit quantization live inside the prior.
* ``encode`` returns one latent per level, **finest first, coarsest (top) last**. Every latent is stored
  *standardized*: its conditional prior has been divided out, so each level is N(0, I) and the standardization's
  log-determinant is part of ``logdet``. Hence ``log p(x) = sum_i log N(z_i; 0, I) + logdet``.
* Decoding recorded latents is exact. A zero latent at a finer level means "at its predicted mean".
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from torch import Tensor, nn


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """Sum of log N(z; 0, I) over all but the batch dimension. Shape (B,)."""
    return (-0.5 * (z * z + math.log(2 * math.pi))).flatten(1).sum(1)


class Prior(nn.Module, ABC):
    """A normalizing flow prior T: z -> x with a multi-level latent."""

    #: side of the square patches the prior was trained on (the solver tiles images with it)
    patch_size: int = 64
    #: image channels the prior models
    in_channels: int = 3
    #: pixels a tile's side must be divisible by (2 ** levels for a squeeze-based multi-scale flow)
    size_multiple: int = 1

    @property
    @abstractmethod
    def num_levels(self) -> int:
        """Number of latents returned by ``encode``."""

    @abstractmethod
    def encode(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """x in [0, 1] -> (standardized latents finest first, log|det dz/dx| per sample (B,))."""

    @abstractmethod
    def decode(self, z: list[Tensor], return_logdet: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Latents -> x (not clamped). With ``return_logdet``, also log|det dx/dz| per sample (B,)."""

    def latent_log_prob(self, z: list[Tensor]) -> Tensor:
        """log N(z; 0, I) summed over levels, shape (B,)."""
        return sum(standard_normal_log_prob(zi) for zi in z)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) of the continuous model-space density, shape (B,)."""
        z, logdet = self.encode(x)
        return self.latent_log_prob(z) + logdet

    @abstractmethod
    def latent_shapes(self, batch: int, height: int, width: int) -> list[tuple[int, ...]]:
        """Shapes of the latents ``encode`` returns for images of this size."""

    @abstractmethod
    def decode_from_coarsest(self, z_top: Tensor) -> Tensor:
        """Decode from the coarsest latent alone, every finer level at its predicted mean (z = 0).

        This is the auto-encoder path of training and the solver's initialization (Helminger et al., Eq. 19).
        """
