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

Usage:
    python -m benchmarks.posterior run [--settings multi,noise25] [--crops kodim02,kodim07,fruits] \
        [--samples 8] [--set posterior.burn_in=20] [--set solver.noise_temperature=1] [--threads 2] \
        [--out docs/posterior.jsonl] [--figure docs/figures/posterior.png]
    python -m benchmarks.posterior report [--out docs/posterior.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor

from benchmarks.cases import degraded_case, load_test_set
from benchmarks.settings import SETTINGS
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
    posterior = {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith("posterior.")}
    overrides = {k: v for k, v in settings.items() if not k.startswith("posterior.")}
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
    report_parser = sub.add_parser("report")
    report_parser.add_argument("--out", default="docs/posterior.jsonl")
    args = parser.parse_args(argv)
    (run if args.command == "run" else report)(args)


if __name__ == "__main__":
    main()
