#!/usr/bin/env python3
"""Carry a training run's resumable state between machines in git-sized files (each <= 20 MB).

A run's ``last.pt`` holds float32 weights plus Adam's two moments: three times the model, too big for one
committed file. ``pack`` splits it into ``NAME.weights.pt`` (float32 weights, counters, generator state: exact)
and ``NAME.optim.pt`` (Adam's moments in bfloat16: a resumed run continues with moments good to ~3 digits,
which Adam's running averages forgive within a few steps). ``unpack`` rebuilds a ``last.pt`` that
``flowprior train ... --resume`` continues from.

    python scripts/resume_checkpoint.py pack runs/warmstart-irflow-cond checkpoints/warmstart-irflow-cond
    python scripts/resume_checkpoint.py unpack checkpoints/warmstart-irflow-cond runs/warmstart-irflow-cond
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from flowprior.prior.checkpoint import read_checkpoint, save_checkpoint

LIMIT_BYTES = 20 * 1000 * 1000


def _cast_moments(optimizer: dict, dtype: torch.dtype) -> dict:
    state = {index: {key: value.to(dtype) if torch.is_tensor(value) and value.is_floating_point()
                     and value.dim() > 0 else value for key, value in entry.items()}
             for index, entry in optimizer["state"].items()}
    return {"state": state, "param_groups": optimizer["param_groups"]}


def pack(run: Path, prefix: Path) -> list[Path]:
    payload = read_checkpoint(run / "last.pt")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    weights, optim = prefix.with_name(prefix.name + ".weights.pt"), prefix.with_name(prefix.name + ".optim.pt")
    save_checkpoint(weights, payload["config"], payload["state_dict"], payload["meta"],
                    generator=payload["generator"])
    save_checkpoint(optim, payload["config"], {}, {}, optimizer=_cast_moments(payload["optimizer"], torch.bfloat16))
    for path in (weights, optim):
        if path.stat().st_size > LIMIT_BYTES:
            raise SystemExit(f"{path} is {path.stat().st_size / 1e6:.1f} MB, over the 20 MB a committed file may be")
    return [weights, optim]


def unpack(prefix: Path, run: Path) -> Path:
    weights = read_checkpoint(prefix.with_name(prefix.name + ".weights.pt"))
    optim = read_checkpoint(prefix.with_name(prefix.name + ".optim.pt"))
    run.mkdir(parents=True, exist_ok=True)
    target = run / "last.pt"
    if target.exists():
        raise SystemExit(f"{target} exists; move it away first (unpack never overwrites a run)")
    save_checkpoint(target, weights["config"], weights["state_dict"], weights["meta"],
                    optimizer=_cast_moments(optim["optimizer"], torch.float32), generator=weights["generator"])
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="RUN_DIR/last.pt -> PREFIX.weights.pt + PREFIX.optim.pt")
    p.add_argument("run", type=Path)
    p.add_argument("prefix", type=Path)
    u = sub.add_parser("unpack", help="PREFIX.weights.pt + PREFIX.optim.pt -> RUN_DIR/last.pt")
    u.add_argument("prefix", type=Path)
    u.add_argument("run", type=Path)
    args = parser.parse_args()
    if args.command == "pack":
        paths = pack(args.run, args.prefix)
        print(json.dumps({str(p): p.stat().st_size for p in paths}))
    else:
        print(unpack(args.prefix, args.run))


if __name__ == "__main__":
    main()
