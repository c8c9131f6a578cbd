"""Calibration of the posterior std map (issue 16) on Table 1 test crops: does it say where the restoration errs?

For each crop and setting (the Table 1 case: same photo crop, seed and 8-bit degraded input as
``benchmarks/table1.py``), the default path restores it (``recipes/restore/fast.yaml``, the MAP estimate of
``flowprior restore``), then :func:`flowprior.posterior.sample_restoration` draws N samples around it. Measured per
case, over every pixel and channel of the 256×256 crop:

* ``spearman``: rank correlation between the std map and the restoration's absolute error ``|x_map - clean|``;
* ``coverage``: fraction of true values within ±2 std of the posterior mean (95 % for a calibrated Gaussian);
* ``std_holes`` / ``std_outside``: mean std in the holes and elsewhere (settings with holes);
* ``seconds``: the sampling alone (the MAP excluded) on ``--threads`` threads; ``cpu_seconds`` its CPU time
  (all threads), a bound on what an idle machine needs when the measurement shares the CPU.

``tune`` measures the same numbers on *validation* crops of the training pool (``flowprior.data.split_pool``'s
held-out photos, as ``benchmarks/tune_restore.py`` picks them) for a grid of sampler settings: recipe choices
(temperature, burn-in, ...) are made there, never on the test crops. The MAP is restored once per crop and
setting with the fixed ``--set`` overrides (a grid key of the solver must be one the MAP ignores, e.g.
``solver.noise_temperature`` with the fast recipe's ``final_steps: 0``).

Usage:
    python -m benchmarks.posterior tune [--settings multi,noise25] [--crops 2] [--size 128] \
        [--grid posterior.temperature=1,2] [--grid posterior.burn_in=8,30] [--out docs/posterior_tuning.jsonl]
    python -m benchmarks.posterior run [--settings multi,noise25] [--crops kodim02,kodim07,fruits] \
        [--samples 8] [--set posterior.burn_in=20] [--set solver.noise_temperature=1] [--threads 2] \
        [--out docs/posterior.jsonl] [--figure docs/figures/posterior.png]
    python -m benchmarks.posterior report [--out docs/posterior.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor

from benchmarks.cases import degraded_case, load_test_set
from benchmarks.settings import SETTINGS, TUNING_SETTINGS, degrade
from benchmarks.table1_report import quantize
from benchmarks.tune_restore import validation_crops
from flowprior.metrics import psnr
from flowprior.posterior import PosteriorSection, sample_restoration
from flowprior.recipe import find_recipe, parse_set_options
from flowprior.restoration import build_recipe, load_model, restore_tensor

IMAGE_SET = "256crops"


def calibration(clean: Tensor, x_map: Tensor, mean: Tensor, std: Tensor, mask: Tensor | None) -> dict:
    """The numbers of one case (module docstring), all pixels and channels."""
    error = (x_map - clean).abs()
    rho = spearmanr(std.flatten().numpy(), error.flatten().numpy()).statistic
    row = {"spearman": float(rho), "coverage": float(((mean - clean).abs() <= 2 * std).float().mean()),
           "std_mean": float(std.mean()), "abs_error_mean": float(error.mean()),
           "psnr_map": float(psnr(clean, x_map)[0]), "psnr_mean": float(psnr(clean, mean.clamp(0, 1))[0])}
    if mask is not None and (mask < 0.5).any():
        holes = (mask < 0.5).expand_as(std)
        row.update(std_holes=float(std[holes].mean()), std_outside=float(std[~holes].mean()),
                   abs_error_holes=float(error[holes].mean()), abs_error_outside=float(error[~holes].mean()))
        row["hole_ratio"] = row["std_holes"] / row["std_outside"]
    return row


def run_case(clean, name, setting, prior, overrides, config, generator_seed):
    degraded, mask, seed = degraded_case(clean, IMAGE_SET, name, setting)
    spec, operator = SETTINGS[setting]
    recipe = build_recipe(find_recipe("fast", "restore"), {"degradation": spec, **overrides}, operator)
    x_map = restore_tensor(degraded, recipe, mask=mask, prior=prior).image
    cpu = time.process_time()
    out = sample_restoration(degraded, recipe, mask, prior, x_map=x_map, config=config,
                             generator=torch.Generator().manual_seed(generator_seed))
    row = {"image": name, "setting": setting, "seed": seed, "size": list(clean.shape[-2:]),
           "seconds": out.info["seconds"], "cpu_seconds": round(time.process_time() - cpu, 1),
           "acceptance": out.info["acceptance"],
           "step_size": out.info["step_size"], "nonfinite_rejections": out.info["nonfinite_rejections"],
           "tile_evaluations": out.info["tile_evaluations"],
           "recipe": "fast", "overrides": overrides, "config": dataclasses.asdict(config),
           **calibration(clean, x_map, out.mean, out.std, mask)}
    return row, (degraded, x_map, out.std, (x_map - clean).abs())


def figure(panels: list[tuple[str, tuple[Tensor, ...]]], path: Path, scale: float = 0.1) -> None:
    """Rows of degraded | restoration | std | |error| (std and error on one gray scale, white = ``scale``)."""
    from PIL import Image, ImageDraw

    size, label = 256, 14
    sheet = Image.new("RGB", (4 * size, len(panels) * (size + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (title, images) in enumerate(panels):
        for c, image in enumerate(images):
            image = image[0]
            if c >= 2:  # a map: mean over channels, on the shared scale
                image = (image.mean(0, keepdim=True) / scale).expand(3, -1, -1)
            array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            sheet.paste(Image.fromarray(array), (c * size, r * (size + label) + label))
        names = ("degraded", "restoration (MAP)", f"posterior std (white = {scale})", f"|error| (white = {scale})")
        for c, text in enumerate(names):
            draw.text((c * size + 3, r * (size + label) + 1), f"{title}: {text}" if c == 0 else text, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    settings = parse_set_options(args.set)
    posterior, overrides = _split_posterior(settings)
    config = PosteriorSection(**{"samples": args.samples, **posterior})
    prior = load_model("default")
    images = load_test_set(args.test_root, IMAGE_SET, names=args.crops.split(","))
    out, panels = Path(args.out), []
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as rows:
        for setting in args.settings.split(","):
            for i, (name, clean) in enumerate(images.items()):
                row, images_of_case = run_case(clean, name, setting, prior, overrides, config, args.seed)
                row["threads"] = args.threads
                rows.write(json.dumps(row) + "\n")
                rows.flush()
                print(json.dumps({k: row[k] for k in row if k not in ("config", "overrides")}), flush=True)
                if i == 0:
                    panels.append((f"{name} {setting}", images_of_case))
    if args.figure:
        figure(panels, Path(args.figure))


def scaled_coverage(clean: Tensor, mean: Tensor, std: Tensor, scales=(1.25, 1.5, 2.0)) -> dict:
    """±2 std coverage were the std ``scale`` times larger: how far a temperature would have to move it (in the
    Laplace regime the std grows like sqrt(temperature))."""
    error = (mean - clean).abs()
    return {f"coverage_x{scale}": float((error <= 2 * scale * std).float().mean()) for scale in scales}


def _split_posterior(settings: dict) -> tuple[dict, dict]:
    """(``posterior.*`` keys without the prefix, the other recipe keys)."""
    posterior = {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith("posterior.")}
    return posterior, {k: v for k, v in settings.items() if not k.startswith("posterior.")}


def tune(args: argparse.Namespace) -> None:
    """Every grid point on every validation crop and setting (module docstring), one JSON row each."""
    torch.set_num_threads(args.threads)
    fixed_settings = parse_set_options(args.set)
    fixed_posterior, fixed = _split_posterior(fixed_settings)
    axes = []
    for item in args.grid:
        key, values = item.split("=", 1)
        axes.append([(key, parse_set_options([f"{key}={v}"])[key]) for v in values.split(",")])
    prior = load_model("default")
    clean_crops = validation_crops(args.root, args.crops, args.size)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as rows:
        for setting in args.settings.split(","):
            spec, operator = TUNING_SETTINGS[setting]
            for index in range(clean_crops.shape[0]):
                clean = clean_crops[index : index + 1]
                degraded, mask = degrade(clean, setting, seed=7 + index)
                degraded = quantize(degraded).float()
                base = build_recipe(find_recipe("fast", "restore"), {"degradation": spec, **fixed}, operator)
                x_map = restore_tensor(degraded, base, mask=mask, prior=prior).image
                for combo in itertools.product(*axes):
                    posterior, overrides = _split_posterior(dict(combo))
                    recipe = build_recipe(find_recipe("fast", "restore"),
                                          {"degradation": spec, **fixed, **overrides}, operator)
                    config = PosteriorSection(**{"samples": args.samples, **fixed_posterior, **posterior})
                    started = time.process_time()
                    sampled = sample_restoration(degraded, recipe, mask, prior, x_map=x_map, config=config,
                                                 generator=torch.Generator().manual_seed(args.seed))
                    row = {"validation_crop": index, "size": args.size, "setting": setting, "grid": dict(combo),
                           "fixed": fixed_settings, "cpu_seconds": round(time.process_time() - started, 1),
                           "acceptance": sampled.info["acceptance"], "step_size": sampled.info["step_size"],
                           "tile_evaluations": sampled.info["tile_evaluations"],
                           **calibration(clean, x_map, sampled.mean, sampled.std, mask),
                           **scaled_coverage(clean, sampled.mean, sampled.std)}
                    rows.write(json.dumps(row) + "\n")
                    rows.flush()
                    print(json.dumps(row), flush=True)


def report(args: argparse.Namespace) -> None:
    """Mean per setting (and configuration) of every number, as a markdown table."""
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["setting"], json.dumps(row["overrides"], sort_keys=True),
               json.dumps({k: row["config"][k] for k in ("start", "samples", "burn_in", "thin")}))
        groups.setdefault(key, []).append(row)
    columns = ("spearman", "coverage", "std_holes", "std_outside", "hole_ratio", "psnr_map", "psnr_mean",
               "acceptance", "seconds")
    print("| setting | overrides | sampler | crops | " + " | ".join(columns) + " |")
    print("|---" * (4 + len(columns)) + "|")
    for (setting, overrides, sampler), group in groups.items():
        cells = []
        for column in columns:
            values = [r[column] for r in group if column in r]
            cells.append(f"{np.mean(values):.3g}" if values else "")
        print(f"| {setting} | {overrides} | {sampler} | {len(group)} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--settings", default="multi,noise25")
    run_parser.add_argument("--crops", default="kodim02,kodim07,fruits")
    run_parser.add_argument("--samples", type=int, default=8)
    run_parser.add_argument("--set", action="append", default=[], help="posterior.KEY=V or a recipe key")
    run_parser.add_argument("--threads", type=int, default=2)
    run_parser.add_argument("--seed", type=int, default=0)
    run_parser.add_argument("--test-root", default="data/test")
    run_parser.add_argument("--out", default="docs/posterior.jsonl")
    run_parser.add_argument("--figure", default=None)
    tune_parser = sub.add_parser("tune")
    tune_parser.add_argument("--settings", default="multi,noise25")
    tune_parser.add_argument("--crops", type=int, default=2)
    tune_parser.add_argument("--size", type=int, default=128)
    tune_parser.add_argument("--samples", type=int, default=8)
    tune_parser.add_argument("--grid", action="append", default=[], help="KEY=v1,v2 (posterior.KEY or a recipe key)")
    tune_parser.add_argument("--set", action="append", default=[], help="fixed posterior.KEY=V or recipe key")
    tune_parser.add_argument("--threads", type=int, default=1)
    tune_parser.add_argument("--seed", type=int, default=0)
    tune_parser.add_argument("--root", default="data/train")
    tune_parser.add_argument("--out", default="docs/posterior_tuning.jsonl")
    report_parser = sub.add_parser("report")
    report_parser.add_argument("--out", default="docs/posterior.jsonl")
    args = parser.parse_args(argv)
    {"run": run, "tune": tune, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
