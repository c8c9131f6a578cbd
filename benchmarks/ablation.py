"""Loss ablation (Helminger et al., Fig. 4): which training losses make a prior good for restoration?

Four copies of ``recipes/train/ablation.yaml`` (a small prior: L = 2, K = 4, width 32, 32-pixel patches) are
trained with the same data, seed and number of steps, differing only in the loss weights:

    nll      NLL with dequantization only
    nll+ln   + latent-noise loss
    nll+ae   + auto-encoder loss from the coarsest latent
    all      NLL + latent noise + auto-encoder (the recipe as written)

Each then restores the same degraded set — centre crops of the Table 1 test photos under the Table 1 settings,
degraded with the same fixed seeds — with the same restore recipes as Table 1 (``--recipe auto``), and the mean
PSNR per variant and setting is reported. The paper finds all > NLL+LN > NLL+AE ≈ NLL.

Usage:
    python -m benchmarks.ablation train [--variants nll,nll+ln,nll+ae,all] [--steps 5000] [--resume]
    python -m benchmarks.ablation run [--crop 128] [--settings noise25,jpeg10,multi] [--out docs/ablation.json]
    python -m benchmarks.ablation report [--out docs/ablation.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.cases import case_seed, load_test_set
from benchmarks.settings import SETTINGS, degrade
from benchmarks.table1 import FlowpriorMethod
from benchmarks.table1_report import quantize
from flowprior.metrics import psnr, ssim
from flowprior.recipe import find_recipe, load_recipe
from flowprior.train_prior import PriorTrainRecipe, train_prior

#: variant -> loss weights that differ from the recipe (which holds "all")
VARIANTS = {
    "nll": {"loss.latent_noise": 0.0, "loss.autoencoder": 0.0},
    "nll+ln": {"loss.autoencoder": 0.0},
    "nll+ae": {"loss.latent_noise": 0.0},
    "all": {},
}
RUNS = Path("runs/ablation")


def variant_dir(variant: str) -> Path:
    return RUNS / variant.replace("+", "-")


def train(args: argparse.Namespace) -> None:
    for variant in args.variants.split(","):
        overrides = {**VARIANTS[variant], "output": str(variant_dir(variant))}
        if args.steps:
            overrides["optim.steps"] = args.steps
        recipe = load_recipe(PriorTrainRecipe, find_recipe("ablation", "train"), overrides)
        print(f"== {variant}: {recipe.loss}", flush=True)
        summary = train_prior(recipe, resume=args.resume, progress=False)
        print(f"   {summary['step']} steps, {summary['seconds']:.0f} s, held-out {summary['val_bpd']} bits/dim",
              flush=True)


def run(args: argparse.Namespace) -> None:
    images = load_test_set(args.root, f"{args.crop}crops")
    out = Path(args.out)
    rows = []
    for variant in args.variants.split(","):
        checkpoint = variant_dir(variant) / "prior.pt"
        log = [json.loads(line) for line in (variant_dir(variant) / "log.jsonl").read_text().splitlines()]
        final = [r for r in log if r.get("final")][-1]
        method = FlowpriorMethod("auto", str(checkpoint))
        for setting in args.settings.split(","):
            for name, clean in images.items():
                degraded, mask = degrade(clean, setting, case_seed(f"{args.crop}crops", name, setting))
                started = time.perf_counter()
                restored = quantize(method(degraded, mask, setting))
                seconds = time.perf_counter() - started
                rows.append({"variant": variant, "setting": setting, "image": name, "steps": final["step"],
                             "val_bpd": final["val_bpd"], "psnr": float(psnr(clean, restored)[0]),
                             "ssim": float(ssim(clean, restored)[0]),
                             "input_psnr": float(psnr(clean, quantize(degraded))[0]), "seconds": seconds})
                print(json.dumps(rows[-1]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"crop": args.crop, "rows": rows}, indent=1))
    report(args)


def report(args: argparse.Namespace) -> None:
    rows = json.loads(Path(args.out).read_text())["rows"]
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))

    def mean(values):
        values = list(values)
        return sum(values) / len(values)

    print("| variant | held-out bits/dim | " + " | ".join(settings) + " | mean |")
    print("|---" * (len(settings) + 3) + "|")
    print("| input | – | " + " | ".join(f"{mean(r['input_psnr'] for r in rows if r['setting'] == s and r['variant'] == variants[0]):.2f}"
                                      for s in settings) + " | |")
    for v in variants:
        mine = [r for r in rows if r["variant"] == v]
        cells = [mean(r["psnr"] for r in mine if r["setting"] == s) for s in settings]
        print(f"| {v} | {mine[0]['val_bpd']:.3f} | " + " | ".join(f"{c:.2f}" for c in cells)
              + f" | {mean(cells):.2f} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--variants", default=",".join(VARIANTS))
    t.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    t.add_argument("--resume", action="store_true")
    r = sub.add_parser("run")
    r.add_argument("--variants", default=",".join(VARIANTS))
    r.add_argument("--root", default="data/test")
    r.add_argument("--crop", type=int, default=128)
    r.add_argument("--settings", default=",".join(SETTINGS))
    r.add_argument("--out", default="docs/ablation.json")
    rep = sub.add_parser("report")
    rep.add_argument("--out", default="docs/ablation.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    {"train": train, "run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
