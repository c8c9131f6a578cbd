"""Solver speed: seconds per optimizer step per tile against tile-batch size, for both prior terms, and the wall
time of a whole image under a schedule.

Usage:
    python -m benchmarks.restore_speed steps [--model default] [--batches 1,4,16,64]
    python -m benchmarks.restore_speed image [--size 512] [--recipe recipes/restore/paper.yaml] [--set k=v ...]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from flowprior.recipe import parse_override
from flowprior.restoration import build_recipe, load_model, restore_tensor
from flowprior.solver import Energy, LatentMAPSolver, Stage


def step_timings(model: str, batches: list[int], steps: int) -> None:
    prior = load_model(model)
    size = prior.patch_size
    for prior_term in ("latent", "flow"):
        for batch in batches:
            y = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
            energy = Energy(observed=y, mask=None, forward=None, weight=50.0, prior_term=prior_term)
            init = [torch.zeros(s) for s in prior.latent_shapes(batch, size, size)]
            solver = LatentMAPSolver(prior)
            solver.solve(energy, init, [Stage(prior.num_levels, 1, 0.01)])  # warm-up
            started = time.perf_counter()
            solver.solve(energy, init, [Stage(prior.num_levels, steps, 0.01)])
            seconds = (time.perf_counter() - started) / steps
            print(json.dumps({"prior_term": prior_term, "tiles": batch, "s_per_step": round(seconds, 4),
                              "s_per_step_per_tile": round(seconds / batch, 5)}), flush=True)


def image_timing(size: int, recipe_path: str | None, settings: list[str]) -> None:
    overrides = dict(parse_override(s) for s in settings)
    recipe_overrides = {k: v for k, v in overrides.items() if "." not in k or k.split(".")[0] in
                        ("solver", "tiling", "degradation", "init", "model", "seed")}
    operator = {k: v for k, v in overrides.items() if k not in recipe_overrides}
    recipe = build_recipe(recipe_path, recipe_overrides, operator)
    y = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    result = restore_tensor(y, recipe, progress=True)
    print(json.dumps({"size": size, "tiles": result.info["tiles"], "timings_s": result.info["timings_s"],
                      "schedule": [(s["active"], s["steps"]) for s in result.info["stage_energies"]]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    steps = sub.add_parser("steps")
    steps.add_argument("--model", default="default")
    steps.add_argument("--batches", default="1,4,16,64")
    steps.add_argument("--steps", type=int, default=5)
    image = sub.add_parser("image")
    image.add_argument("--size", type=int, default=512)
    image.add_argument("--recipe", default=None)
    image.add_argument("--set", action="append", default=[])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "steps":
        step_timings(args.model, [int(b) for b in args.batches.split(",")], args.steps)
    else:
        image_timing(args.size, args.recipe, args.set)


if __name__ == "__main__":
    main()
