"""Multi-scale Glow prior (Kingma & Dhariwal 2018) as used by Helminger et al. for restoration.

Level i (of L): squeeze -> K flow steps -> (all but the last level) factor out half of the channels. The factored
half gets a conditional Gaussian prior whose mean and log-std come from a zero-initialized conv of the kept half;
the top (last) level gets a learned, spatially constant Gaussian. Latents are stored standardized
(``eps = (z - mean) / std``), so every level is N(0, I) and ``eps = 0`` means "at the predicted mean".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from flowprior.prior.base import Prior
from flowprior.prior.layers import FlowStep, ZeroConv2d, squeeze2d, unsqueeze2d


@dataclass
class GlowConfig:
    """Architecture of a :class:`Glow`; saved in every checkpoint so loading needs no flags."""

    in_channels: int = 3
    levels: int = 3
    steps: int = 4  # flow steps per level (K)
    width: int = 64  # hidden channels of each coupling network
    depth: int = 2  # conv layers of the coupling's context encoder (paper: 1 for Sprites, 5 for DIV2K)
    n_bits: int = 8  # quantization of the training data; sets the dequantization noise and bits/dim offset
    scale_floor: float = 0.01
    top_prior: str = "learned"  # "learned" (mean and log-std) or "mean_only" (unit variance, trainable mean)
    patch_size: int = 64
    seed: int = 0  # initial rotations of the 1x1 convolutions

    def __post_init__(self):
        if self.levels < 1 or self.steps < 1 or self.width < 1 or self.depth < 1:
            raise ValueError("levels, steps, width and depth must all be >= 1")
        if self.top_prior not in ("learned", "mean_only"):
            raise ValueError(f"top_prior must be 'learned' or 'mean_only', not {self.top_prior!r}")
        if not 0 < self.scale_floor < 1:
            raise ValueError("scale_floor must lie in (0, 1)")
        if not 1 <= self.n_bits <= 8:
            raise ValueError("n_bits must lie in 1..8")
        if self.patch_size % (2**self.levels):
            raise ValueError(f"patch_size {self.patch_size} is not divisible by 2**levels = {2**self.levels}")


class GaussianParams(nn.Module):
    """Conditional prior of a factored-out latent: (mean, log_std) = ZeroConv(kept half), split by channel."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ZeroConv2d(in_channels, 2 * out_channels)

    def forward(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        h = self.conv(kept)
        return h[:, 0::2], h[:, 1::2]


class TopPrior(nn.Module):
    """Spatially constant Gaussian of the top latent: learned mean (and log-std unless ``mean_only``)."""

    def __init__(self, channels: int, mean_only: bool):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_std = nn.Parameter(torch.zeros(1, channels, 1, 1), requires_grad=not mean_only)

    def forward(self, like: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean.expand_as(like), self.log_std.expand_as(like)


class Glow(Prior):
    """Multi-scale Glow. ``encode``/``decode`` follow :class:`flowprior.prior.base.Prior`.

    Example:
        >>> prior = Glow(GlowConfig(levels=2, steps=1, width=8, patch_size=8))
        >>> z, logdet = prior.encode(torch.rand(2, 3, 8, 8))
        >>> [tuple(zi.shape) for zi in z]
        [(2, 6, 4, 4), (2, 24, 2, 2)]
    """

    def __init__(self, config: GlowConfig):
        super().__init__()
        self.config = config
        self.in_channels = config.in_channels
        self.patch_size = config.patch_size
        self.size_multiple = 2**config.levels
        generator = torch.Generator().manual_seed(config.seed)
        self.levels = nn.ModuleList()
        self.split_priors = nn.ModuleList()
        channels = config.in_channels
        for level in range(config.levels):
            channels *= 4
            steps = [FlowStep(channels, config.width, config.depth, config.scale_floor, generator) for _ in range(config.steps)]
            self.levels.append(nn.ModuleList(steps))
            if level < config.levels - 1:
                self.split_priors.append(GaussianParams(channels - channels // 2, channels // 2))
                channels = channels - channels // 2
        self.top_prior = TopPrior(channels, mean_only=config.top_prior == "mean_only")

    @property
    def num_levels(self) -> int:
        return self.config.levels

    # --- encode: image -> standardized latents -------------------------------------------------------------------
    def encode(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        self._check_size(x)
        h = x - 0.5
        logdet = h.new_zeros(h.shape[0])
        latents = []
        for index, steps in enumerate(self.levels):
            h = squeeze2d(h)
            for step in steps:
                h, ld = step(h)
                logdet = logdet + ld
            if index < len(self.split_priors):
                keep = h.shape[1] - h.shape[1] // 2
                h, z = h[:, :keep], h[:, keep:]
                mean, log_std = self.split_priors[index](h)
            else:
                z = h
                mean, log_std = self.top_prior(h)
            latents.append((z - mean) * torch.exp(-log_std))
            logdet = logdet - log_std.flatten(1).sum(1)
        return latents, logdet

    # --- decode: standardized latents -> image -------------------------------------------------------------------
    def decode(self, z: list[Tensor | None], return_logdet: bool = False):
        """Invert :meth:`encode`. A ``None`` entry at a finer level means "at its predicted mean" (eps = 0).

        Returns x (model output + 0.5, not clamped) and, with ``return_logdet``, ``log|det dx/dz|`` per sample.
        """
        if len(z) != self.num_levels or z[-1] is None:
            raise ValueError(f"expected {self.num_levels} latents with the top one given")
        top = z[-1]
        mean, log_std = self.top_prior(top)
        h = top * torch.exp(log_std) + mean
        logdet = log_std.flatten(1).sum(1)
        for index in reversed(range(self.num_levels)):
            if index < len(self.split_priors):
                mean, log_std = self.split_priors[index](h)
                eps = z[index]
                part = mean if eps is None else eps * torch.exp(log_std) + mean
                logdet = logdet + log_std.flatten(1).sum(1)
                h = torch.cat([h, part], 1)
            for step in reversed(self.levels[index]):
                h, ld = step.reverse(h)
                logdet = logdet - ld
            h = unsqueeze2d(h)
        x = h + 0.5
        return (x, logdet) if return_logdet else x

    def decode_from_coarsest(self, z_top: Tensor) -> Tensor:
        """Decode from the top latent alone, every finer level at its predicted mean (the auto-encoder path)."""
        return self.decode([None] * (self.num_levels - 1) + [z_top])

    def latent_shapes(self, batch: int, height: int, width: int) -> list[tuple[int, int, int, int]]:
        shapes, channels = [], self.in_channels
        for level in range(self.num_levels):
            channels, height, width = channels * 4, height // 2, width // 2
            if level < self.num_levels - 1:
                shapes.append((batch, channels // 2, height, width))
                channels -= channels // 2
            else:
                shapes.append((batch, channels, height, width))
        return shapes

    @torch.no_grad()
    def sample(self, batch: int, height: int, width: int, temperature: float = 0.7,
               generator: torch.Generator | None = None) -> Tensor:
        """Draw images: every standardized latent ~ N(0, temperature^2 I). Sampling is separate from decoding."""
        device = self.top_prior.mean.device
        z = [temperature * torch.randn(s, generator=generator).to(device) for s in self.latent_shapes(batch, height, width)]
        return self.decode(z)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Data-dependent ActNorm initialization on a (large) batch of clean images."""
        was_training = self.training
        self.train()
        self.encode(x)
        self.train(was_training)

    def _check_size(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W) images, got shape {tuple(x.shape)}")
        if x.shape[2] % self.size_multiple or x.shape[3] % self.size_multiple:
            raise ValueError(f"image size {tuple(x.shape[2:])} is not divisible by {self.size_multiple}")

    def config_dict(self) -> dict:
        return {"name": "glow", **asdict(self.config)}
