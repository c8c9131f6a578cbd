"""Learned warm starts against the cold MAP: quality and seconds on the Table 1 test crops and settings.

Configurations (``--configs``, comma-separated):

    <method>          the learned warm start alone (resflow, irflow, flowie): its few network passes, no MAP
    <method>@N        the same with N sampling steps (resflow, irflow)
    <method>*N        the same averaged over N orientations of the input (self-ensemble, N = 2, 4, 8)
    <method>+map      warm start + the short MAP of ``recipes/restore/fast.yaml`` (init = that method)
    cold              the cold paper schedule: the paper's 250 coarse-to-fine steps (50 / 50 / 150) with the cold recipe
                      tuned for the degradation (λ, lr, data and prior terms; identity init)
    tuned             flowprior's tuned 100-step cold recipes (``--recipe auto``, identity init): Table 1's row
    paper             ``recipes/restore/paper.yaml`` verbatim (250 steps, flow term, lr 1): diverges with our prior

Warm starts are the embedded ones unless ``--checkpoint METHOD=PATH`` names another. Images are the first
``--crops`` 256×256 centre crops of Table 1 (``cases.load_test_set``), degraded with Table 1's fixed seeds, so the
numbers line up with docs/table1.json. Every output is quantized to 8 bits before PSNR/SSIM. Seconds are wall
time of the restoration alone (models loaded beforehand) on ``--threads`` threads.

Headline: time(cold) ÷ time(<method>+map), per setting, with the PSNR difference beside it.

Usage:
    python -m benchmarks.warmstart run [--configs irflow,irflow+map,cold] [--crops 4] [--settings ...] \
        [--out docs/warmstart.jsonl] [--checkpoint irflow=runs/warmstart-irflow/best.pt] [--resume]
    python -m benchmarks.warmstart report [--out docs/warmstart.jsonl]

Rows are JSON lines appended as they finish; ``--resume`` skips the (config, image, setting) rows already there.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from benchmarks.cases import case_seed, load_test_set
from benchmarks.settings import SETTINGS, degrade, sampled_operator
from benchmarks.table1_report import quantize
from flowprior.metrics import psnr, ssim
from flowprior.recipe import find_recipe
from flowprior.restoration import auto_recipe_name, build_recipe, load_model, restore_tensor, with_total_steps
from flowprior.warmstart import get_initializer
from flowprior.warmstart.learned import build_warmstart

METHODS = ("resflow", "irflow", "flowie")


class Runner:
    """Restores one (image, setting) with one configuration; models are loaded once."""

    def __init__(self, checkpoints: dict[str, str]) -> None:
        self.prior = load_model("default")
        self.checkpoints = checkpoints
        self.initializers = {}

    def initializer(self, name: str):
        """``method`` or ``method@N``: the same weights sampled with N steps (ResFlow, IR-Flow)."""
        if name not in self.initializers:
            base, _, ensemble = name.partition("*")
            method, _, steps = base.partition("@")
            initializer = get_initializer(method, checkpoint=self.checkpoints.get(method), seed=0,
                                          ensemble=int(ensemble or 1))
            if steps:
                initializer = copy.copy(initializer)  # the loaded model is shared: rebuild, don't mutate
                model = build_warmstart({**initializer.model.config_dict(), "steps": int(steps)})
                model.load_state_dict(initializer.model.state_dict())
                initializer.model = model.eval().requires_grad_(False)
                initializer.specialists = {}  # the override is the general model's: no specialist takes over
            self.initializers[name] = initializer
        return self.initializers[name]

    def recipe(self, config: str, setting: str):
        spec, operator = SETTINGS[setting]
        if config == "paper":
            name, overrides = "paper", {}
        elif config in ("tuned", "cold"):
            name, overrides = auto_recipe_name(spec, warm_start=False), {}
        else:
            method = config.removesuffix("+map")
            name, overrides = "fast", {"init": method, "init_checkpoint": self.checkpoints.get(method)}
        recipe = build_recipe(find_recipe(name, "restore"), {"degradation": spec, **overrides}, operator)
        return with_total_steps(recipe, 250, self.prior.num_levels) if config == "cold" else recipe

    def __call__(self, config: str, degraded: torch.Tensor, mask: torch.Tensor | None, setting: str, seed: int):
        if config.partition("*")[0].partition("@")[0] in METHODS:
            op, params = sampled_operator(tuple(degraded.shape), setting, seed)  # the mask is known, as to a user
            initializer = self.initializer(config)
            started = time.perf_counter()
            out = initializer(degraded, op, params)
            return out, time.perf_counter() - started, {}
        if config.endswith("+map"):
            self.initializer(config.removesuffix("+map"))  # load outside the timing, as the prior is
        recipe = self.recipe(config, setting)
        started = time.perf_counter()
        result = restore_tensor(degraded, recipe, mask=mask, prior=self.prior)
        seconds = time.perf_counter() - started
        steps = sum(s.steps for s in recipe.stages(self.prior.num_levels))
        return result.image, seconds, {"steps": steps, "rollbacks": result.info["rollbacks"]}


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    if args.images == "val":  # choosing a recipe: validation crops of the training pool, never the test photos
        from benchmarks.tune_restore import validation_crops

        crops = validation_crops(args.train_root, args.crops, 256)
        images = {f"val{i}": crops[i:i + 1].float() for i in range(len(crops))}
    else:
        images = dict(list(load_test_set(args.root, "256crops").items())[: args.crops])
    out = Path(args.out)
    done = set()
    if args.resume and out.is_file():
        done = {(r["config"], r["image"], r["setting"]) for r in map(json.loads, out.read_text().splitlines())}
    runner = Runner(checkpoints)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as log:
        for config in args.configs.split(","):
            for setting in args.settings.split(","):
                for name, clean in images.items():
                    if (config, name, setting) in done:
                        continue
                    seed = case_seed("256crops", name, setting)
                    degraded, mask = degrade(clean, setting, seed)
                    restored, seconds, extra = runner(config, degraded, mask, setting, seed)
                    restored = quantize(restored)
                    method = config.removesuffix("+map").partition("@")[0]
                    row = {"config": config, "image": name, "setting": setting,
                           "psnr": round(float(psnr(clean, restored)[0]), 4),
                           "ssim": round(float(ssim(clean, restored)[0]), 4),
                           "input_psnr": round(float(psnr(clean, quantize(degraded))[0]), 4),
                           "seconds": round(seconds, 3), "threads": args.threads,
                           "checkpoint": checkpoints.get(method, "embedded") if method in METHODS else None,
                           **extra}
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    print(json.dumps(row), flush=True)
    report(args)


def report(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines()]
    configs = list(dict.fromkeys(r["config"] for r in rows))
    settings = list(dict.fromkeys(r["setting"] for r in rows))

    def stat(config: str, setting: str, key: str) -> float | None:
        values = [r[key] for r in rows if r["config"] == config and r["setting"] == setting]
        return sum(values) / len(values) if values else None

    images = sorted({r["image"] for r in rows})
    print(f"{len(images)} crops ({', '.join(images)}); PSNR dB / SSIM / seconds per crop\n")
    print("| config | " + " | ".join(settings) + " |")
    print("|---" * (len(settings) + 1) + "|")
    first = configs[0]
    print("| input | " + " | ".join(f"{stat(first, s, 'input_psnr'):.2f}" for s in settings) + " |")
    for c in configs:
        cells = []
        for s in settings:
            p = stat(c, s, "psnr")
            cells.append("–" if p is None else f"{p:.2f} / {stat(c, s, 'ssim'):.3f} / {stat(c, s, 'seconds'):.2f}")
        print(f"| {c} | " + " | ".join(cells) + " |")
    if "cold" in configs:
        print("\nSpeed-up over the cold paper schedule (time(cold) / time(config)), ΔPSNR = config − cold:\n")
        print("| config | " + " | ".join(settings) + " |")
        print("|---" * (len(settings) + 1) + "|")
        for c in configs:
            if c == "cold":
                continue
            cells = []
            for s in settings:
                t, tp = stat(c, s, "seconds"), stat("cold", s, "seconds")
                if t is None or tp is None:
                    cells.append("–")
                    continue
                cells.append(f"{tp / t:.1f}× ({stat(c, s, 'psnr') - stat('cold', s, 'psnr'):+.2f} dB)")
            print(f"| {c} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--configs", default="irflow,irflow+map,cold")
    r.add_argument("--settings", default=",".join(SETTINGS))
    r.add_argument("--crops", type=int, default=4)
    r.add_argument("--root", default="data/test")
    r.add_argument("--images", choices=("test", "val"), default="test",
                   help="test: Table 1's crops; val: 256² validation crops of the training pool (to choose recipes)")
    r.add_argument("--train-root", default="data/train")
    r.add_argument("--checkpoint", action="append", default=[], help="METHOD=PATH (default: the embedded one)")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", default="docs/warmstart.jsonl")
    r.add_argument("--resume", action="store_true")
    rep = sub.add_parser("report")
    rep.add_argument("--out", default="docs/warmstart.jsonl")
    args = p.parse_args(argv)
    {"run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
