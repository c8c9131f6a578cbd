"""Training throughput (patches/s) and encode/decode time per 64x64 patch for each prior training recipe.

Usage: python -m benchmarks.prior_throughput [--recipes cpu-default,sprites-like,div2k,mnist] [--threads 2]
Synthetic patches (smooth random fields) are used so the numbers do not depend on the training data being fetched.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from flowprior.prior.glow import Glow
from flowprior.recipe import load_recipe
from flowprior.train_prior import PriorTrainRecipe, prior_loss_terms

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "train"


def smooth_patches(batch: int, channels: int, size: int, generator: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(batch, channels, size // 4, size // 4, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def timed(function, repeats: int) -> float:
    function()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def measure(name: str, repeats: int) -> dict:
    recipe = load_recipe(PriorTrainRecipe, RECIPES / f"{name}.yaml")
    generator = torch.Generator().manual_seed(0)
    size, channels = recipe.model.patch_size, recipe.model.in_channels
    memory_format = torch.channels_last if recipe.optim.channels_last else torch.contiguous_format
    prior = Glow(recipe.model).to(memory_format=memory_format)
    batch = recipe.optim.batch_size
    x = smooth_patches(batch, channels, size, generator).contiguous(memory_format=memory_format)
    prior.initialize(x)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-5)

    def train_step():
        terms = prior_loss_terms(prior, x, recipe.loss, generator)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()

    step_s = timed(train_step, repeats)
    prior.eval()
    probe = smooth_patches(16, channels, size, generator)
    with torch.no_grad():
        encode_s = timed(lambda: prior.encode(probe), repeats)
        z, _ = prior.encode(probe)
        decode_s = timed(lambda: prior.decode(z), repeats)
    return {"recipe": name, "params": sum(p.numel() for p in prior.parameters()), "batch": batch,
            "patch": size, "train_patches_per_s": round(batch / step_s, 1),
            "encode_ms_per_patch": round(1000 * encode_s / 16, 2), "decode_ms_per_patch": round(1000 * decode_s / 16, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="cpu-default,sprites-like,div2k,mnist")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.recipes.split(","):
        print(json.dumps(measure(name, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
