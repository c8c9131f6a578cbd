"""Deep Image Prior (Ulyanov et al., 2018), our own CPU-sized implementation, used as a peer in Table 1.

A randomly initialized encoder-decoder with skip connections maps a *fixed* noise tensor to an image and is fitted
to the degraded image alone with Adam; the network's structure fits image content before it fits noise or
artifacts, so stopping after a fixed number of iterations (tuned on validation crops, never on test images)
gives the restoration. Missing pixels are left out of the loss, so the network fills holes from its structure.

Differences from the published setup, all for CPU budgets: 32 channels instead of 128, 4 scales instead of 5, no
input jitter and no output averaging; the iteration count is the only tuned parameter.

All randomness (weights and the noise input) comes from one seeded ``torch.Generator``: the same seed and the
same thread count give the same output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv_block(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    # Reflection padding avoids the dark frame zero padding imprints on fitted images.
    pad = (kernel - 1) // 2
    return nn.Sequential(nn.ReflectionPad2d(pad), nn.Conv2d(c_in, c_out, kernel, stride=stride),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


class SkipNet(nn.Module):
    """Hourglass network: ``depth`` stride-2 encoder levels, bilinear upsampling, 1x1 skip branches, sigmoid out.

    Args:
        in_channels: channels of the noise input.
        width: channels of every encoder/decoder level.
        skip: channels of each skip branch.
        depth: number of scales; input sides must be divisible by ``2**depth``.
        out_channels: image channels.
    """

    def __init__(self, in_channels: int = 32, width: int = 32, skip: int = 4, depth: int = 4,
                 out_channels: int = 3) -> None:
        super().__init__()
        self.depth = depth
        self.skips, self.downs, self.ups = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = in_channels
        for _ in range(depth):
            self.skips.append(_conv_block(c, skip, 1))
            self.downs.append(nn.Sequential(_conv_block(c, width, 3, stride=2), _conv_block(width, width, 3)))
            self.ups.append(nn.Sequential(nn.BatchNorm2d(width + skip), _conv_block(width + skip, width, 3),
                                          _conv_block(width, width, 1)))
            c = width
        self.out = nn.Conv2d(width, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        features, h = [], x
        for skip, down in zip(self.skips, self.downs):
            features.append(skip(h))
            h = down(h)
        for level in reversed(range(self.depth)):
            h = F.interpolate(h, size=features[level].shape[-2:], mode="bilinear", align_corners=False)
            h = self.ups[level](torch.cat([h, features[level]], dim=1))
        return torch.sigmoid(self.out(h))


@torch.no_grad()
def init_weights(net: nn.Module, generator: torch.Generator) -> None:
    """Kaiming-uniform conv weights and uniform biases drawn from ``generator`` (the global RNG stays untouched)."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            bound = math.sqrt(6.0 / ((1 + 0.2**2) * fan_in))  # gain of LeakyReLU(0.2)
            module.weight.uniform_(-bound, bound, generator=generator)
            module.bias.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=generator)
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.fill_(1.0)
            module.bias.zero_()


@dataclass
class DIPResult:
    """``image``: (B, C, H, W) in [0, 1] after ``iterations`` updates; ``snapshots[k]``: the output after k updates;
    ``losses``: the (masked) MSE at every update."""

    image: Tensor
    snapshots: dict[int, Tensor] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)


def deep_image_prior(y: Tensor, mask: Tensor | None = None, *, iterations: int = 500, lr: float = 0.01,
                     width: int = 32, depth: int = 4, input_channels: int = 32, seed: int = 0,
                     snapshots: Iterable[int] = ()) -> DIPResult:
    """Fit a fresh :class:`SkipNet` to ``y`` for ``iterations`` Adam steps (the Deep Image Prior).

    Each image of the batch gets its own network (the prior is the structure of one network fitted to one image).

    Args:
        y: (B, C, H, W) degraded images in [0, 1].
        mask: (B, 1, H, W), 1 = observed, 0 = missing (left out of the loss), or None.
        iterations: number of Adam updates (the early-stopping point).
        lr: Adam learning rate.
        width, depth, input_channels: network size (see :class:`SkipNet`).
        seed: seeds the weights and the fixed noise input.
        snapshots: iteration counts (<= ``iterations``) whose outputs are also returned, for tuning the stopping
            point with a single run.

    Returns:
        :class:`DIPResult`, tensors on ``y``'s device in ``y``'s dtype.

    Example:
        >>> y = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> deep_image_prior(y, iterations=2, width=8, depth=2).image.shape
        torch.Size([1, 3, 32, 32])
    """
    if y.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) images, got shape {tuple(y.shape)}")
    wanted = sorted({int(k) for k in snapshots})
    if wanted and (wanted[0] < 0 or wanted[-1] > iterations):
        raise ValueError(f"snapshots must lie in [0, {iterations}], got {wanted}")
    results = [_fit_one(y[i:i + 1], None if mask is None else mask[i:i + 1], iterations, lr, width, depth,
                        input_channels, seed + i, wanted) for i in range(y.shape[0])]
    image = torch.cat([r.image for r in results])
    snaps = {k: torch.cat([r.snapshots[k] for r in results]) for k in wanted}
    losses = [sum(values) / len(values) for values in zip(*(r.losses for r in results))]
    return DIPResult(image, snaps, losses)


def _fit_one(y: Tensor, mask: Tensor | None, iterations: int, lr: float, width: int, depth: int,
             input_channels: int, seed: int, wanted: list[int]) -> DIPResult:
    generator = torch.Generator().manual_seed(seed)
    target = y.detach().to(torch.float32).cpu()
    weight = torch.ones_like(target[:, :1]) if mask is None else (mask.detach().to(torch.float32).cpu() > 0.5).float()
    step = 2**depth
    h, w = target.shape[-2:]
    padded = (math.ceil(h / step) * step, math.ceil(w / step) * step)  # the net's output is cropped back to h x w
    net = SkipNet(input_channels, width, depth=depth, out_channels=target.shape[1])
    init_weights(net, generator)
    noise = torch.rand(1, input_channels, *padded, generator=generator) * 0.1  # the original DIP's U(0, 0.1) input
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    count = weight.sum().clamp(min=1.0) * target.shape[1]
    snaps: dict[int, Tensor] = {}
    losses: list[float] = []
    net.train()  # batch statistics throughout, as in the original: the fitted output is the train-mode output
    for it in range(iterations + 1):
        out = net(noise)[..., :h, :w]
        if it in wanted:
            snaps[it] = out.detach().clone()
        if it == iterations:
            break
        loss = ((out - target).square() * weight).sum() / count
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().item())
    back = {"device": y.device, "dtype": y.dtype}
    return DIPResult(out.detach().clamp(0, 1).to(**back), {k: v.clamp(0, 1).to(**back) for k, v in snaps.items()},
                     losses)


def main(argv: list[str] | None = None) -> None:
    """PSNR along one DIP fit on one Table 1 case (the same degraded input as the table): is the stopping point late
    enough?  ``python -m benchmarks.dip full/u76c0g_bliznaca_srgb8 noise5 --snapshots 300,600,900,1200``"""
    import argparse
    import time

    from benchmarks.cases import degraded_case, load_test_set
    from benchmarks.table1_report import quantize
    from flowprior.metrics import psnr

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("case", help="IMAGE_SET/NAME, e.g. 256crops/monarch or full/u76c0g_bliznaca_srgb8")
    parser.add_argument("setting", help="a Table 1 setting: jpeg10, jpeg30, noise5, noise25, multi")
    parser.add_argument("--snapshots", default="300,600,900,1200", help="iteration counts to score; the last ends")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--test-root", default="data/test")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    image_set, name = args.case.split("/", 1)
    clean = load_test_set(args.test_root, image_set, [name])[name]
    degraded, mask, _ = degraded_case(clean, image_set, name, args.setting)
    counts = sorted(int(n) for n in args.snapshots.split(","))
    started = time.perf_counter()
    fit = deep_image_prior(degraded, mask, iterations=counts[-1], snapshots=counts)
    print(f"input {float(psnr(clean.double(), degraded.double())[0]):.2f} dB")
    for n in counts:
        print(f"{n:6d} iterations {float(psnr(clean.double(), quantize(fit.snapshots[n]))[0]):.2f} dB")
    print(f"{time.perf_counter() - started:.0f} s on {args.threads} threads")


if __name__ == "__main__":
    main()
