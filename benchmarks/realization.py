"""Degradations with a random realization (haze): restore from the photo, never from the restore seed.

Each Table 1 crop is hazed once with the case's fixed seed and stored at 8 bits. It is then restored twice with the
default path (``recipe="auto"``) under two restore seeds that differ from the degradation seed; the rows record
input PSNR, the warm start alone (the dark-channel estimate undone in closed form, no MAP step) and the full
restore, and whether the two restore seeds gave the same output.

    python -m benchmarks.realization --images test --out docs/realization.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.cases import case_seed, load_test_set
from benchmarks.table1_report import quantize
from benchmarks.tune_restore import validation_crops
from degradations import parse
from flowprior.metrics import psnr
from flowprior.restoration import build_recipe, find_restore_recipe, restore_tensor

SETTINGS = {"haze": "haze", "haze+noise": "haze+noise(sigma=5)"}


def restore_with(y: torch.Tensor, spec: str, seed: int, map_steps: bool) -> tuple[torch.Tensor, float]:
    """The default path's restore of ``y`` (and its seconds); ``map_steps=False`` keeps the warm start alone."""
    overrides = {"degradation": spec, "seed": seed}
    if not map_steps:
        overrides.update({"solver.steps_per_stage": 0, "solver.final_steps": 0})
    recipe = build_recipe(find_restore_recipe("auto", spec), overrides, {})
    started = time.perf_counter()
    return restore_tensor(y, recipe).image, time.perf_counter() - started


def cases(images: str, train_root: str, test_root: str, count: int, names: list[str] | None = None
          ) -> dict[str, torch.Tensor]:
    if images == "val":  # choosing settings: validation crops of the training pool, never the test photos
        crops = validation_crops(train_root, count, 256)
        return {f"val{i}": crops[i:i + 1].float().expand(-1, 3, -1, -1) for i in range(crops.shape[0])}
    return dict(list(load_test_set(test_root, "256crops", names).items())[:count])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", choices=("test", "val"), default="test")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--train-root", default="data/train")
    parser.add_argument("--test-root", default="data/test")
    parser.add_argument("--names", default=None, help="only these test crops (comma-separated stems)")
    parser.add_argument("--warm-only", action="store_true", help="the warm start alone (no MAP restores)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("docs/realization.jsonl"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    names = args.names.split(",") if args.names else None
    for name, clean in cases(args.images, args.train_root, args.test_root, args.count, names).items():
        for setting in args.settings.split(","):
            spec = SETTINGS[setting]
            op = parse(spec)
            seed = case_seed(args.images, name, setting)
            y = quantize(op.apply(clean, op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(seed))))
            y = y.float()
            warm, _ = restore_with(y, spec, seed + 1, map_steps=False)
            row = {"image": name, "setting": setting, "input": round(float(psnr(clean, y)), 2),
                   "warm_start": round(float(psnr(clean, warm)), 2)}
            if not args.warm_only:
                full, seconds = restore_with(y, spec, seed + 1, map_steps=True)
                again, _ = restore_with(y, spec, seed + 2, map_steps=True)
                row.update(restored=round(float(psnr(clean, full)), 2), seed_invariant=bool(torch.equal(full, again)),
                           seconds=round(seconds, 1))
            print(json.dumps(row), flush=True)
            rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
