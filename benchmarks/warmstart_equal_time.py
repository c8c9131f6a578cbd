"""Warm-start networks at equal wall time: each candidate trained from scratch for the same minutes, then scored.

Issue 13 item 2 asks for the candidates compared by training patches/s *and* by validation PSNR at equal wall
time (a faster network sees more patches; a bigger one learns more from each). Every candidate trains the
conditioned IR-Flow recipe (``recipes/train/warmstart-irflow-cond.yaml``: its mixture, batch, loss and one-step
path) with its own network, at a constant lr after a short warmup (no schedule favours either length), for
``--minutes`` of wall time on ``--threads`` threads, and is then scored on the recipe's held-out pairs (the
validation photos of the training pool, every mixture member). Run it on a quiet machine.

    python -m benchmarks.warmstart_equal_time --minutes 10 --threads 2 --out docs/warmstart_equal_time.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flowprior.conditioning import CHANNELS
from flowprior.recipe import find_recipe, load_recipe
from flowprior.train_warmstart import WarmstartTrainRecipe, train_warmstart

#: name -> the irflow section's network keys (the rest of the recipe is shared)
CANDIDATES = {
    "timeunet-w32-d3": {"arch": "timeunet", "width": 32, "depth": 3, "unshuffle": 1, "top_width": 0},
    "lean-w32-d2": {"arch": "lean", "width": 32, "depth": 2, "unshuffle": 2, "top_width": 0},
    "lean-w48-d2": {"arch": "lean", "width": 48, "depth": 2, "unshuffle": 2, "top_width": 0},
    "lean-w48-d2-top16": {"arch": "lean", "width": 48, "depth": 2, "unshuffle": 2, "top_width": 16},
}


#: name -> optim keys of how the candidate trains: the float32 loop, or the fast one (a bfloat16 forward pass,
#: channels-last weights with the fused Adam update, a compiled network; flowprior/training.py)
TRAINING = {
    "fp32": {"optim.precision": "fp32", "optim.fast_adam": False, "optim.compile": False},
    "fast": {"optim.precision": "bf16", "optim.fast_adam": True, "optim.compile": True},
}


def candidate_recipe(network: dict, minutes: float, threads: int, output: Path,
                     training: dict | None = None) -> WarmstartTrainRecipe:
    overrides = {f"irflow.{key}": value for key, value in network.items()}
    overrides.update(TRAINING["fp32"] if training is None else training)  # the recipe itself trains fast
    overrides.update({"irflow.cond_channels": CHANNELS, "optim.max_minutes": minutes, "optim.steps": 100_000,
                      "optim.lr": 5e-4, "optim.warmup_steps": 100, "optim.final_lr_fraction": 1.0,
                      "optim.val_every": 100_000, "optim.checkpoint_every": 100_000, "optim.threads": threads,
                      "output": str(output)})
    return load_recipe(WarmstartTrainRecipe, find_recipe("warmstart-irflow-cond", "train"), overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES),
                        help="comma-separated NETWORK or NETWORK:TRAINING, TRAINING one of " + ", ".join(TRAINING))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", default="runs/eval/equal_time")
    parser.add_argument("--out", default="docs/warmstart_equal_time.jsonl")
    args = parser.parse_args()
    for name in args.candidates.split(","):
        network, _, training = name.partition(":")
        recipe = candidate_recipe(CANDIDATES[network], args.minutes, args.threads, Path(args.runs) / name,
                                  TRAINING[training or "fp32"])
        result = train_warmstart(recipe, progress=False)
        patches = result["step"] * recipe.optim.batch_size
        row = {"candidate": name, "network": CANDIDATES[network], "training": training or "fp32",
               "minutes": args.minutes, "threads": args.threads,
               "steps": result["step"], "patches": patches,
               "patches_per_s": round(patches / max(result["seconds"], 1e-9), 1),
               "val_psnr": round(result["val_psnr"], 3), "val_input_psnr": round(result["val_input_psnr"], 3),
               "val_psnr_by_setting": {k: round(v, 2) for k, v in result["val_psnr_by_setting"].items()}}
        with open(args.out, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
