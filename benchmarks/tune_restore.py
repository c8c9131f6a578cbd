"""Tune the restore recipes (λ, step size, steps) on the *validation* photos of the training pool — never on test images.

The validation photos are those that ``flowprior.data.split_pool`` holds out of prior training (a hash of the path).
Prints one JSON line per (setting, configuration) with the mean PSNR over the crops.

Usage:
    python -m benchmarks.tune_restore --settings jpeg30,noise5 --grid solver.weight=100,400,1600 \
        --grid solver.lr=0.02,0.05 [--set solver.final_steps=60] [--crops 12] [--size 64]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch

from benchmarks.settings import SETTINGS, TUNING_SETTINGS, degrade
from flowprior.data import IMAGE_WEIGHTINGS, photo_sources
from flowprior.metrics import psnr
from flowprior.recipe import parse_override
from flowprior.restoration import build_recipe, load_model, restore_tensor


def validation_crops(root: str, count: int, size: int, seed: int = 0, weighting: str = "area") -> torch.Tensor:
    """``count`` crops of the validation photos; ``weighting`` "uniform" draws every photo alike, as Table 1 counts
    every test image alike ("area": by crop positions, the default since session 1)."""
    _, val = photo_sources(root, patch_size=size, val_fraction=0.05, seed=0, val_image_weighting=weighting)
    return val.sample(count, torch.Generator().manual_seed(1000 + seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--grid", action="append", default=[], help="key=v1,v2,... (recipe keys)")
    parser.add_argument("--set", action="append", default=[], help="fixed recipe override key=value")
    parser.add_argument("--recipe", default=None, help="base recipe YAML")
    parser.add_argument("--model", default="default")
    parser.add_argument("--root", default="data/train")
    parser.add_argument("--crops", type=int, default=12)
    parser.add_argument("--image-weighting", default="area", choices=sorted(IMAGE_WEIGHTINGS),
                        help="how crops are spread over the validation photos (flowprior.data.IMAGE_WEIGHTINGS)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prior = load_model(args.model)
    clean = validation_crops(args.root, args.crops, args.size, weighting=args.image_weighting)
    fixed = dict(parse_override(s) for s in args.set)
    axes = []
    for item in args.grid:
        key, values = item.split("=", 1)
        axes.append([(key, parse_override(f"x={v}")[1]) for v in values.split(",")])
    for setting in args.settings.split(","):
        spec, operator = TUNING_SETTINGS[setting]
        degraded, mask = degrade(clean, setting, seed=7)
        base = float(psnr(clean, degraded).mean())
        for combo in itertools.product(*axes) if axes else [()]:
            overrides = {**fixed, **dict(combo), "degradation": spec, "model": args.model}
            recipe = build_recipe(args.recipe, overrides, operator)
            started = time.perf_counter()
            result = restore_tensor(degraded, recipe, mask=mask, prior=prior)
            value = float(psnr(clean, result.image).mean())
            print(json.dumps({"setting": setting, **dict(combo), "psnr": round(value, 3),
                              "input_psnr": round(base, 3), "seconds": round(time.perf_counter() - started, 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
