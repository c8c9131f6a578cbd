"""Super-resolution and deconvolution on the default path (issue 14 item 4): input, the ``inverse`` warm start and
the ``--recipe auto`` restore (warm start + its MAP steps) on the same crops, with times.

    python -m benchmarks.linear_restore --images val --count 4 --out /tmp/linear_val.jsonl   # choosing
    python -m benchmarks.linear_restore --images test --count 4 --out docs/linear_restore.jsonl

``val``: 256² validation crops of the training pool (benchmarks.tune_restore.validation_crops, the photos the
constants of flowprior/warmstart/inverse.py and the deblur/superres recipes were chosen on); ``test``: the first
``count`` Table 1 test crops (benchmarks.cases), reported only. Each case is degraded with its fixed case seed and
stored at 8 bits, as a file would be. For super-resolution the "input" columns are the nearest-neighbour and bicubic
enlargements (the input itself is smaller than the reference).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.cases import case_seed, load_test_set
from benchmarks.table1_report import quantize
from benchmarks.tune_restore import validation_crops
from degradations import parse
from degradations.functional.resize import upsample
from flowprior.metrics import psnr
from flowprior.restoration import build_recipe, find_restore_recipe, load_model, restore_tensor
from flowprior.warmstart import get_initializer

#: name -> (spec, operator arguments)
LINEAR_SETTINGS = {
    "sr2": ("downsample", {"downsample.factor": 2}),
    "sr3": ("downsample", {"downsample.factor": 3}),
    "sr2_noise5": ("downsample+noise", {"downsample.factor": 2, "noise.sigma": 5}),
    "blur2": ("blur", {"blur.sigma": 2.0}),
    "blur2_noise2": ("blur+noise", {"blur.sigma": 2.0, "noise.sigma": 2}),
    "blur2_noise10": ("blur+noise", {"blur.sigma": 2.0, "noise.sigma": 10}),
}


def crops(images: str, count: int, root_val: str, root_test: str) -> dict[str, torch.Tensor]:
    if images == "val":
        batch = validation_crops(root_val, count, 256)
        return {f"val{i}": batch[i : i + 1] for i in range(batch.shape[0])}
    return dict(list(load_test_set(root_test, "256crops").items())[:count])


def measure(name: str, clean: torch.Tensor, setting: str, prior, image_set: str) -> dict:
    """One case: the degraded input, the warm start alone and the auto recipe's restore."""
    spec, params = LINEAR_SETTINGS[setting]
    op = parse(spec, params)
    height, width = op.input_size(*op.output_size(*clean.shape[-2:]))  # x3: the crop a multiple of the factor
    clean = clean[..., :height, :width]
    params_drawn = op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(case_seed(image_set, name,
                                                                                                 setting)))
    y = quantize(op.apply(clean, params_drawn)).float()
    row = {"image": name, "setting": setting, "spec": op.spec()}
    if y.shape == clean.shape:
        row["input"] = round(float(psnr(clean, y)), 3)
    else:
        factor = clean.shape[-1] // y.shape[-1]
        row["nearest"] = round(float(psnr(clean, y.repeat_interleave(factor, -2).repeat_interleave(factor, -1))), 3)
        row["bicubic"] = round(float(psnr(clean, upsample(y, factor).clamp(0, 1))), 3)
    started = time.perf_counter()
    x0 = get_initializer("inverse")(y, op, params_drawn)
    row["warm_start"], row["warm_start_s"] = round(float(psnr(clean, x0)), 3), round(time.perf_counter() - started, 2)
    recipe_path = find_restore_recipe("auto", spec)
    recipe = build_recipe(recipe_path, {"degradation": spec}, params)
    wall, cpu = time.perf_counter(), time.process_time()
    restored = restore_tensor(y, recipe, prior=prior)
    row.update(recipe=recipe_path.stem, map_steps=recipe.solver.final_steps, restored=round(float(psnr(clean,
               restored.image)), 3), wall_s=round(time.perf_counter() - wall, 1),
               cpu_s=round(time.process_time() - cpu, 1), threads=torch.get_num_threads())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", choices=("val", "test"), default="val")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--settings", default="sr2,blur2_noise2")
    parser.add_argument("--val-root", default="data/train")
    parser.add_argument("--test-root", default="data/test")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="append one JSON line per case")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prior = load_model("default")
    image_set = "256crops" if args.images == "test" else "val256"
    for name, clean in crops(args.images, args.count, args.val_root, args.test_root).items():
        for setting in args.settings.split(","):
            row = measure(name, clean, setting, prior, image_set)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
