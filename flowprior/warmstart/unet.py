"""The shared velocity network of the learned warm starts: a small time-conditioned U-Net.

Time enters through a sinusoidal embedding that sets the scale and shift of every group norm (adaptive group
norm). Any input size works: the input is reflect-padded to a multiple of ``2**depth`` and the output cropped
back. An optional adaptor branch reads an auxiliary input (ResFlow's y) and modulates the encoder features
through zero-initialized convolutions, so a fresh adaptor leaves the network exactly as it is without one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class UNetConfig:
    """Architecture of a :class:`TimeUNet`; stored in warm-start checkpoints.

    Attributes:
        in_channels: channels of the main input (the state x, plus any condition concatenated to it).
        out_channels: channels of the prediction.
        aux_channels: channels of the adaptor branch's input; 0 = no adaptor.
        cond_channels: channels of the degradation maps (:mod:`flowprior.conditioning`) concatenated to the
            input; 0 = a blind network.
        unshuffle: the network runs at ``1/unshuffle`` of the input's resolution on pixel-unshuffled input and
            pixel-shuffles its output back (``unshuffle**2`` fewer positions: ~4x the speed at 2 for the same
            widths, the trade FFDNet makes).
        width: channels at full resolution; level i has ``width * min(2**i, max_mult)``.
        depth: number of 2x downsamplings (the input is padded to a multiple of ``2**depth``).
        blocks: residual blocks per level and direction.
        max_mult: cap on the channel multiplier of the coarse levels.
        time_dim: size of the sinusoidal time embedding.
        groups: group-norm groups (reduced where a level's channels are not divisible).
        top_width: channels of a full-resolution branch after the pixel shuffle (:class:`LeanUNet` with
            ``unshuffle`` > 1 only; 0 = none). It sees the input at full resolution, where an unshuffled network
            has no weight of its own, and adds a zero-initialized correction to the output.
    """

    in_channels: int = 3
    out_channels: int = 3
    aux_channels: int = 0
    cond_channels: int = 0
    unshuffle: int = 1
    width: int = 32
    depth: int = 3
    blocks: int = 1
    max_mult: int = 4
    time_dim: int = 64
    groups: int = 8
    top_width: int = 0

    def __post_init__(self):
        if min(self.in_channels, self.out_channels, self.width, self.blocks, self.max_mult) < 1:
            raise ValueError("in_channels, out_channels, width, blocks and max_mult must be >= 1")
        if self.depth < 0 or self.aux_channels < 0 or self.time_dim < 2 or self.time_dim % 2:
            raise ValueError("depth and aux_channels must be >= 0 and time_dim an even number >= 2")
        if self.cond_channels < 0 or self.unshuffle < 1:
            raise ValueError("cond_channels must be >= 0 and unshuffle >= 1")
        if self.top_width < 0:
            raise ValueError("top_width must be >= 0")

    def channels(self, level: int) -> int:
        return self.width * min(2**level, self.max_mult)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of times in [0, 1] (scaled by 1000 so the fast frequencies resolve small steps).

    Shape:
        t: (B,). Output: (B, dim).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


def reflect_pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad bottom/right to a multiple of ``multiple`` by mirroring; return the padded tensor and the old size.

    Reflection needs the pad to be smaller than the side, so tiny inputs are mirrored in several passes (and a
    1-pixel side, which cannot be mirrored, is replicated).
    """
    height, width = x.shape[-2:]
    targets = {-2: -(-height // multiple) * multiple, -1: -(-width // multiple) * multiple}
    # one side at a time: a 1-pixel side (replicated) must not stop the other side's mirroring
    for dim, target in targets.items():
        while x.shape[dim] < target:
            side = x.shape[dim]
            pad = min(target - side, side - 1)
            mode = "reflect" if pad > 0 else "replicate"
            pad = pad if pad > 0 else target - side
            x = F.pad(x, [0, pad, 0, 0] if dim == -1 else [0, 0, 0, pad], mode=mode)
    return x, (height, width)


def _groups(channels: int, groups: int) -> int:
    return math.gcd(channels, groups) or 1


class AdaGroupNorm(nn.Module):
    """Group norm whose scale and shift come from the time embedding: ``norm(h) * (1 + s(e)) + b(e)``.

    The projection starts at zero, so a fresh block is a plain group norm.
    """

    def __init__(self, channels: int, embed_dim: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels, groups), channels, affine=False)
        self.project = nn.Linear(embed_dim, 2 * channels)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:
        scale, shift = self.project(embedding)[..., None, None].chunk(2, dim=1)
        return self.norm(h) * (1 + scale) + shift


class ResBlock(nn.Module):
    """Pre-activation residual block with adaptive group norms; the 2nd conv starts at zero (block = skip)."""

    def __init__(self, in_channels: int, out_channels: int, embed_dim: int, groups: int):
        super().__init__()
        self.norm1 = AdaGroupNorm(in_channels, embed_dim, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = AdaGroupNorm(out_channels, embed_dim, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:
        out = self.conv1(F.silu(self.norm1(h, embedding)))
        out = self.conv2(F.silu(self.norm2(out, embedding)))
        return self.skip(h) + out


class Adaptor(nn.Module):
    """Encodes the auxiliary input at every encoder resolution into a (scale, shift) pair per level.

    The last conv of every level is zero-initialized: a fresh adaptor modulates nothing.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.stem = nn.Conv2d(config.aux_channels * config.unshuffle**2, config.width, 3, padding=1)
        self.downs = nn.ModuleList(nn.Conv2d(config.width, config.width, 3, stride=2, padding=1)
                                   for _ in range(config.depth))
        self.heads = nn.ModuleList(nn.Conv2d(config.width, 2 * config.channels(level), 1)
                                   for level in range(config.depth + 1))
        for head in self.heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, aux: Tensor) -> list[tuple[Tensor, Tensor]]:
        h = F.silu(self.stem(aux))
        out = []
        for level, head in enumerate(self.heads):
            if level:
                h = F.silu(self.downs[level - 1](h))
            out.append(head(h).chunk(2, dim=1))
        return out


class TimeUNet(nn.Module):
    """``net(x, t, aux=None) -> prediction`` at the size of ``x``.

    Args:
        config: the architecture.

    Shape:
        x: (B, in_channels, H, W), any H, W >= 1; t: (B,) or a float; aux: (B, aux_channels, H, W) or None;
        cond: (B, cond_channels, H, W) or None. Output: (B, out_channels, H, W).

    Example:
        >>> net = TimeUNet(UNetConfig(width=8, depth=2))
        >>> net(torch.rand(2, 3, 13, 21), torch.rand(2)).shape
        torch.Size([2, 3, 13, 21])
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c, embed = config, 4 * config.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(c.time_dim, embed), nn.SiLU(), nn.Linear(embed, embed))
        area = c.unshuffle**2
        self.stem = nn.Conv2d((c.in_channels + c.cond_channels) * area, c.channels(0), 3, padding=1)
        self.encoder = nn.ModuleList()
        self.downs = nn.ModuleList()
        for level in range(c.depth + 1):
            width = c.channels(level)
            blocks = [ResBlock(width, width, embed, c.groups) for _ in range(c.blocks)]
            self.encoder.append(nn.ModuleList(blocks))
            if level < c.depth:
                self.downs.append(nn.Conv2d(width, c.channels(level + 1), 3, stride=2, padding=1))
        self.middle = ResBlock(c.channels(c.depth), c.channels(c.depth), embed, c.groups)
        self.ups = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(c.depth)):
            width = c.channels(level)
            self.ups.append(nn.Conv2d(c.channels(level + 1), width, 3, padding=1))
            self.decoder.append(nn.ModuleList(ResBlock(2 * width if i == 0 else width, width, embed, c.groups)
                                              for i in range(c.blocks)))
        self.out_norm = nn.GroupNorm(_groups(c.channels(0), c.groups), c.channels(0))
        self.out = nn.Conv2d(c.channels(0), c.out_channels * area, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # predicts 0 at first: every warm start then begins as the identity
        nn.init.zeros_(self.out.bias)
        self.adaptor = Adaptor(c) if c.aux_channels else None

    def forward(self, x: Tensor, t: Tensor | float, aux: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        c = self.config
        if (aux is None) != (self.adaptor is None):
            raise ValueError("pass aux exactly when the network was built with aux_channels > 0")
        if (cond is None) != (c.cond_channels == 0):
            raise ValueError("pass cond exactly when the network was built with cond_channels > 0")
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device).expand(x.shape[0])
        embedding = self.time_mlp(timestep_embedding(t, c.time_dim))
        if cond is not None:
            x = torch.cat([x, cond.to(device=x.device, dtype=x.dtype)], dim=1)
        multiple = c.unshuffle * 2**c.depth
        x, (height, width) = reflect_pad_to_multiple(x, multiple)
        modulation = None
        if self.adaptor is not None:
            aux = reflect_pad_to_multiple(aux.to(x.dtype), multiple)[0]
            modulation = self.adaptor(F.pixel_unshuffle(aux, c.unshuffle) if c.unshuffle > 1 else aux)
        h = self.stem(F.pixel_unshuffle(x, c.unshuffle) if c.unshuffle > 1 else x)
        skips = []
        for level, blocks in enumerate(self.encoder):
            for block in blocks:
                h = block(h, embedding)
            if modulation is not None:
                scale, shift = modulation[level]
                h = h * (1 + scale) + shift
            if level < self.config.depth:
                skips.append(h)
                h = self.downs[level](h)
        h = self.middle(h, embedding)
        for up, blocks in zip(self.ups, self.decoder):
            skip = skips.pop()
            h = up(F.interpolate(h, size=skip.shape[-2:], mode="nearest"))
            h = torch.cat([h, skip], dim=1)
            for block in blocks:
                h = block(h, embedding)
        out = self.out(F.silu(self.out_norm(h)))
        if c.unshuffle > 1:
            out = F.pixel_shuffle(out, c.unshuffle)
        return out[..., :height, :width]
