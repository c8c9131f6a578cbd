"""Where the noise gap to BM3D lives, on validation crops: per crop, the default path's warm start against BM3D, and
what a non-local step piloted by the warm start could add (an experiment, not on the default path).

The step: every pixel's 7×7 patch is matched, on the warm start's luma, against the patches at the offsets of a
15×15 search window; the noisy image is averaged over the ``k`` best matches (patches put back with equal weight,
the offset 0 always among them). On self-similar, man-made crops (a tunnel's ribs, rows of fins, a wall of hatches)
BM3D beats the network by 1–3 dB, and averaging repeated structure is what it has that the network lacks. The
estimate is blended with the warm start by β, twice: the best β per crop (an oracle, which needs the clean crop) and
SURE's β, whose divergence treats the matches as fixed (the step is then linear in the noisy image, and its
divergence is the centre weight summed; the warm start's divergence comes from one probe of the whole warm start).

Prints one JSON line per σ: mean PSNR of the warm start, BM3D (when the ``bm3d`` package is installed), their
plain mean, and the blend with the oracle β and with SURE's β, with each crop's difference to the warm start.

Usage:
    python -m benchmarks.nonlocal_probe --sigmas 5,25 --crops 16 --size 256 --image-weighting uniform [--threads 2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.wiener_step import add_crop_arguments, clean_crops, noisy_crops
from degradations import parse
from flowprior.metrics import psnr
from flowprior.warmstart import get_initializer
from flowprior.warmstart.sure import PROBE_STEP, away_from_the_bounds, divergence_along, sure_weight_between

LUMA = torch.full((3,), 3 ** -0.5)


def _box(x: Tensor, half: int) -> Tensor:
    """Mean over every (2 half + 1)² window, separable, no padding."""
    k = 2 * half + 1
    return F.avg_pool2d(F.avg_pool2d(x, (1, k), stride=1), (k, 1), stride=1)


def pilot_matched_mean(y: Tensor, pilot: Tensor, k: int = 8, radius: int = 7, half: int = 3) -> tuple[Tensor, Tensor]:
    """(the estimate, (B, 1, H, W) the weight of each pixel's own value in it): ``y`` averaged over the ``k`` offsets
    whose pilot patches match best (module docstring)."""
    height, width = y.shape[-2:]
    n = 2 * radius + 1
    guide = F.pad(torch.einsum("c,bchw->bhw", LUMA, pilot).unsqueeze(1), [radius + half] * 4, mode="reflect")
    rows, cols = height + 2 * half, width + 2 * half
    centre = guide[..., radius:radius + rows, radius:radius + cols]
    shifted = [guide[..., dy:dy + rows, dx:dx + cols] for dy in range(n) for dx in range(n)]
    distance = _box(torch.cat([(s - centre).square() for s in shifted], 1), half)
    distance[:, n * n // 2] = -1.0  # the patch itself is always a match (flat pilots tie at 0)
    chosen = torch.zeros_like(distance).scatter_(1, distance.topk(k, dim=1, largest=False).indices, 1.0)
    cover = _box(F.pad(chosen, [half] * 4), half)  # how many chosen patches put offset d's value on each pixel
    padded = F.pad(y, [radius] * 4, mode="reflect")
    total = sum(cover[:, j:j + 1] * padded[..., j // n:j // n + height, j % n:j % n + width] for j in range(n * n))
    weight = cover.sum(1, keepdim=True)
    return total / weight, cover[:, n * n // 2:n * n // 2 + 1] / weight


def _bm3d(y: Tensor, sigma: float) -> Tensor | None:
    try:
        import bm3d
    except ImportError:
        return None
    outs = [bm3d.bm3d_rgb(np.ascontiguousarray(image.permute(1, 2, 0).double().numpy()), sigma / 255) for image in y]
    return torch.stack([torch.from_numpy(np.ascontiguousarray(o)).permute(2, 0, 1).float() for o in outs])


def one_crop(initializer, y: Tensor, clean: Tensor, sigma: float) -> dict[str, float | Tensor]:
    """PSNR of one crop's warm start and of its blend with the non-local step at the oracle's and at SURE's β,
    that β, and the warm start itself (``"out"``, for the comparison with BM3D)."""
    op = parse("noise", {"noise.sigma": sigma})
    params = op.sample_params(tuple(y.shape), torch.Generator().manual_seed(0))
    direction = torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    warm = initializer(y, op, params)
    moved = initializer(y + PROBE_STEP * direction, op, params)
    variance = torch.tensor([(sigma / 255) ** 2])
    inside = away_from_the_bounds(warm, variance)
    estimate, own = pilot_matched_mean(y, warm)
    divergence = (own.expand_as(y).double() * inside).flatten(1).sum(1)
    beta = sure_weight_between(y, warm, estimate, divergence_along(direction, warm, moved, inside), divergence,
                               variance, fallback=0.0, values=inside)

    def blend(b: float) -> float:
        return float(psnr(clean, (warm + b * (estimate - warm)).clamp(0, 1)))

    return {"warm start": blend(0.0), "oracle": max(blend(b) for b in np.linspace(0, 1, 21)),
            "sure": blend(float(beta)), "beta": float(beta), "out": warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_crop_arguments(parser, "5,25")
    args = parser.parse_args()
    clean = clean_crops(args)
    initializer = get_initializer("irflow", seed=0, ensemble=8, wiener=25.0)  # the default path's warm start
    for sigma in (float(s) for s in args.sigmas.split(",")):
        y = noisy_crops(clean, sigma)
        rows = [one_crop(initializer, y[i:i + 1], clean[i:i + 1], sigma) for i in range(len(y))]
        row = {"sigma": sigma, "weighting": args.image_weighting}
        for key in ("warm start", "oracle", "sure"):
            row[key] = round(float(np.mean([r[key] for r in rows])), 3)
        for key in ("oracle", "sure"):
            row[f"{key} per crop"] = [round(r[key] - r["warm start"], 2) for r in rows]
        row["sure beta"] = [round(r["beta"], 2) for r in rows]
        other = _bm3d(y, sigma)
        if other is not None:
            ours = torch.cat([r["out"] for r in rows])
            row["bm3d"] = round(float(psnr(clean, other.clamp(0, 1)).mean()), 3)
            row["mean of the two"] = round(float(psnr(clean, ((ours + other) / 2).clamp(0, 1)).mean()), 3)
            row["bm3d per crop"] = [round(float(b - o), 2) for b, o in
                                    zip(psnr(clean, other.clamp(0, 1)), psnr(clean, ours.clamp(0, 1)))]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
