"""A lean conditioned U-Net for CPU training: pixel-unshuffled input, no normalization, additive skips.

Chosen by measurement (docs/benchmarks.md, "Warm-start networks"): on 2 CPU cores the group-normed
:class:`~flowprior.warmstart.unet.TimeUNet` trains at ~13 patches/s; this network, which runs at half resolution
on pixel-unshuffled input (as FFDNet does) and spends its parameters at the coarse levels, where a weight costs
16x fewer multiply-adds than at the top, trains ~10x faster at a similar parameter count.

Time (IR-Flow's t, ResFlow's t) enters as a per-channel shift of every block, from a small MLP of its sinusoidal
embedding; the degradation maps (:mod:`flowprior.conditioning`) are concatenated to the input. The output layer
starts at zero, so a fresh network predicts 0 (every warm start then begins as the identity).

With ``top_width`` > 0 a :class:`FullResolutionBranch` refines the shuffled output at the input's resolution
(the fine detail low noise hides). Its output layer starts at zero too, so a trained network grown by it
(``scripts/grow_warmstart.py``) predicts exactly what it did before and training continues from there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowprior.warmstart.unet import UNetConfig, reflect_pad_to_multiple, timestep_embedding


class LeanBlock(nn.Module):
    """``h + conv(relu(conv(h) + shift(e)))``: a norm-free residual block with a time shift."""

    def __init__(self, channels: int, embed_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.shift = nn.Linear(embed_dim, channels)
        nn.init.zeros_(self.shift.weight)
        nn.init.zeros_(self.shift.bias)
        # a small last conv keeps the residual stack near the identity at first (no norm to tame it)
        nn.init.normal_(self.conv2.weight, std=1e-3)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:
        out = F.relu(self.conv1(h) + self.shift(embedding)[..., None, None])
        return h + self.conv2(out)


class FullResolutionBranch(nn.Module):
    """``correction(x, features, e)``: two lean blocks at full resolution on the padded input ``x`` and the
    top level's features pixel-shuffled to full resolution; the last conv starts at zero."""

    def __init__(self, in_channels: int, feature_channels: int, width: int, out_channels: int, embed_dim: int):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.lift = nn.Conv2d(feature_channels, width, 1)
        self.blocks = nn.ModuleList(LeanBlock(width, embed_dim) for _ in range(2))
        self.out = nn.Conv2d(width, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, features: Tensor, embedding: Tensor) -> Tensor:
        h = self.stem(x) + self.lift(features)
        for block in self.blocks:
            h = block(h, embedding)
        return self.out(F.relu(h))


class LeanUNet(nn.Module):
    """``net(x, t, aux=None, cond=None) -> prediction`` at the size of ``x`` (the :class:`TimeUNet` contract).

    Uses ``config.width`` (channels at the top level), ``depth`` (2x downsamplings below the unshuffled input),
    ``blocks`` (residual blocks at the top level; level i has ``blocks * 2**i``, capped at 4), ``max_mult`` and
    ``unshuffle`` and ``top_width``. ``aux`` is concatenated to the input like ``cond`` (ResFlow's y).

    Example:
        >>> net = LeanUNet(UNetConfig(width=8, depth=2, unshuffle=2, cond_channels=7))
        >>> net(torch.rand(2, 3, 13, 21), torch.rand(2), cond=torch.rand(2, 7, 13, 21)).shape
        torch.Size([2, 3, 13, 21])
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        embed = 2 * c.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(c.time_dim, embed), nn.SiLU(), nn.Linear(embed, embed))
        area = c.unshuffle**2
        self.stem = nn.Conv2d((c.in_channels + c.cond_channels + c.aux_channels) * area, c.channels(0), 3, padding=1)
        self.encoder, self.downs, self.ups, self.decoder = (nn.ModuleList() for _ in range(4))
        for level in range(c.depth + 1):
            width, blocks = c.channels(level), self.blocks_at(level)
            self.encoder.append(nn.ModuleList(LeanBlock(width, embed) for _ in range(blocks)))
            if level < c.depth:
                self.downs.append(nn.Conv2d(width, c.channels(level + 1), 2, stride=2))
                self.ups.append(nn.ConvTranspose2d(c.channels(level + 1), width, 2, stride=2))
                self.decoder.append(nn.ModuleList(LeanBlock(width, embed) for _ in range(blocks)))
        self.out = nn.Conv2d(c.channels(0), c.out_channels * area, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # registered last, so a grown network's earlier parameters keep their order (and their Adam state)
        self.top = None
        if c.top_width:
            if c.unshuffle < 2 or c.channels(0) % area:
                raise ValueError("top_width needs unshuffle >= 2 and a top width divisible by unshuffle**2")
            self.top = FullResolutionBranch(c.in_channels + c.cond_channels + c.aux_channels, c.channels(0) // area,
                                            c.top_width, c.out_channels, embed)

    def blocks_at(self, level: int) -> int:
        return min(4, self.config.blocks * 2**level)

    def forward(self, x: Tensor, t: Tensor | float, aux: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        c = self.config
        if (aux is None) != (c.aux_channels == 0) or (cond is None) != (c.cond_channels == 0):
            raise ValueError("pass aux and cond exactly when the network was built with them")
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device).expand(x.shape[0])
        embedding = self.time_mlp(timestep_embedding(t, c.time_dim).to(x.dtype))  # a float64 network stays float64
        inputs = [x] + [extra.to(device=x.device, dtype=x.dtype) for extra in (cond, aux) if extra is not None]
        x, (height, width) = reflect_pad_to_multiple(torch.cat(inputs, dim=1), c.unshuffle * 2**c.depth)
        # channels-last activations (every conv's output follows its input's layout): oneDNN's convolutions run
        # ~25 % faster on them on CPU (a 256² pass 111 -> 84 ms), the same values up to rounding
        h = self.stem((F.pixel_unshuffle(x, c.unshuffle) if c.unshuffle > 1 else x)
                      .contiguous(memory_format=torch.channels_last))
        skips = []
        for level, blocks in enumerate(self.encoder):
            for block in blocks:
                h = block(h, embedding)
            if level < c.depth:
                skips.append(h)
                h = self.downs[level](h)
        for up, blocks in zip(reversed(self.ups), reversed(self.decoder)):
            h = up(h) + skips.pop()
            for block in blocks:
                h = block(h, embedding)
        out = self.out(h)
        if c.unshuffle > 1:
            out = F.pixel_shuffle(out, c.unshuffle)
        if self.top is not None:
            out = out + self.top(x, F.pixel_shuffle(h, c.unshuffle), embedding)
        return out[..., :height, :width].contiguous()
