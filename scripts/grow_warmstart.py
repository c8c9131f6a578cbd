#!/usr/bin/env python3
"""Grow a run's lean warm start by a full-resolution branch, in place (the old last.pt is kept beside it).

    python scripts/grow_warmstart.py runs/warmstart-irflow-cond --top-width 16
    flowprior train warmstart --method irflow --recipe recipes/train/warmstart-irflow-cond.yaml --resume \
        --set irflow.top_width=16 ...

The grown network predicts exactly what the trained one did (the branch's last layer starts at zero); see
flowprior/warmstart/grow.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flowprior.prior.checkpoint import read_checkpoint, save_checkpoint
from flowprior.warmstart.grow import grow_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("run", type=Path, help="a training run's folder (holding last.pt)")
    parser.add_argument("--top-width", type=int, default=16)
    args = parser.parse_args()
    last, kept = args.run / "last.pt", args.run / "last.before-grow.pt"
    if kept.exists():
        raise SystemExit(f"{kept} exists: this run was grown already")
    grown = grow_checkpoint(read_checkpoint(last), args.top_width)
    last.rename(kept)
    extra = {key: grown[key] for key in ("optimizer", "generator") if key in grown}
    save_checkpoint(last, grown["config"], grown["state_dict"], grown.get("meta"), **extra)
    print(f"{last}: top_width {args.top_width} (the trained state is in {kept})")


if __name__ == "__main__":
    main()
