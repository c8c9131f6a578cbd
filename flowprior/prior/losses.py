"""Training losses of the flow prior (Helminger et al. §3.2), one named function each.

Units, stated once:

* ``nll_bits_per_dim``: negative log-likelihood of the *discrete* n-bit image under uniform dequantization, in
  bits per dimension (the standard flow metric): ``(-log p(x + u) + D * n_bits * log 2) / (D * log 2)``.
* ``latent_noise_loss`` and ``autoencoder_loss``: mean squared error per pixel on the [0, 1] image scale.
* ``image_noise_loss``: mean squared difference per latent dimension between standardized latents.

The weights (β) multiply these means; the paper's β_ln = 100, β_ae = 1, β_in = 100.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from flowprior.prior.base import Prior


def dequantize(x: Tensor, n_bits: int, generator: torch.Generator | None = None) -> Tensor:
    """Quantize [0, 1] images to ``n_bits`` and add uniform noise inside each bin (result stays in [0, 1))."""
    bins = 2**n_bits
    discrete = torch.floor(x.clamp(0, 1) * 255 / 2 ** (8 - n_bits)).clamp(max=bins - 1)
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return (discrete + noise) / bins


def nll_bits_per_dim(prior: Prior, x_dequantized: Tensor, n_bits: int) -> tuple[Tensor, list[Tensor]]:
    """Per-sample bits/dim of dequantized images; also returns the latents for reuse by the other losses."""
    z, logdet = prior.encode(x_dequantized)
    dims = x_dequantized[0].numel()
    log_p = prior.latent_log_prob(z) + logdet
    bits = (-log_p + dims * n_bits * math.log(2)) / (dims * math.log(2))
    return bits, z


def latent_noise_loss(prior: Prior, x: Tensor, z: list[Tensor], generator: torch.Generator | None = None,
                      amplitude: float = 0.5) -> Tensor:
    """``||T(u + xi) - x||^2`` with ``xi ~ U(-a, a)`` on every latent: decoding must be robust to latent noise.

    This is what keeps the MAP solver's latent iterates decoding to plausible images.
    """
    noisy = [zi + amplitude * (2 * torch.rand(zi.shape, generator=generator, dtype=zi.dtype).to(zi.device) - 1)
             for zi in z]
    return (prior.decode(noisy) - x).pow(2).flatten(1).mean(1)


def autoencoder_loss(prior: Prior, x: Tensor, z: list[Tensor]) -> Tensor:
    """``||x_tilde - x||^2`` where ``x_tilde`` is decoded from the coarsest latent with finer levels at their means.

    This trains the split priors' means to carry the detail, which the coarse-to-fine solver relies on.
    """
    return (prior.decode_from_coarsest(z[-1]) - x).pow(2).flatten(1).mean(1)


def image_noise_loss(prior: Prior, x: Tensor, z: list[Tensor], generator: torch.Generator | None = None,
                     amplitude: float = 10 / 255) -> Tensor:
    """``||T^-1(x) - T^-1(x + eta)||^2`` with ``eta ~ U(-10, 10)`` on the 0-255 scale (10/255 here)."""
    eta = amplitude * (2 * torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) - 1)
    z_noisy, _ = prior.encode(x + eta)
    total = sum((a - b).pow(2).flatten(1).sum(1) for a, b in zip(z, z_noisy))
    return total / sum(zi[0].numel() for zi in z)
