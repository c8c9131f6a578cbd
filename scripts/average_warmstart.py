#!/usr/bin/env python3
"""Average the weights of several checkpoints of one training run (stochastic weight averaging).

    python scripts/average_warmstart.py runs/snap/last-*.pt -o runs/warmstart-irflow-cond/averaged.pt

At a constant, small learning rate the iterates wander around a minimum; their mean sits nearer its centre than
any one of them, which typically lowers the validation error a little at no training cost. Only checkpoints of
the same network (same config) taken at that learning rate should be averaged. The output is a weights-only
checkpoint (no optimizer state) that ``scripts/embed_warmstart.py`` and ``--set init_checkpoint=`` read; its
``meta["averaged_steps"]`` lists the steps it came from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from flowprior.prior.checkpoint import read_checkpoint, save_checkpoint


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Entrywise mean in float64 (cast back to each entry's dtype); integer buffers come from the last state."""
    keys = states[-1].keys()
    if any(state.keys() != keys for state in states):
        raise SystemExit("the checkpoints hold different parameters: they are not one network")
    averaged = {}
    for key in keys:
        last = states[-1][key]
        if not last.is_floating_point():
            averaged[key] = last.clone()
            continue
        total = sum(state[key].to(torch.float64) for state in states)
        averaged[key] = (total / len(states)).to(last.dtype)
    return averaged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoints of one run (last.pt copies)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    if len(args.checkpoints) < 2:
        raise SystemExit("give at least two checkpoints")
    payloads = [read_checkpoint(path) for path in args.checkpoints]
    if any(p["config"] != payloads[-1]["config"] for p in payloads):
        raise SystemExit("the checkpoints have different configs: they are not one network")
    steps = [int(p.get("meta", {}).get("train_state", {}).get("step", -1)) for p in payloads]
    if len(set(steps)) < len(steps):
        raise SystemExit(f"some checkpoints are the same step: {steps}")
    meta = dict(payloads[steps.index(max(steps))].get("meta", {}))  # the latest checkpoint's
    meta["averaged_steps"] = sorted(steps)
    state = average_state_dicts([p["state_dict"] for p in payloads])
    save_checkpoint(args.output, payloads[-1]["config"], state, meta)
    print(f"{args.output}: mean of {len(payloads)} checkpoints, steps {sorted(steps)}")


if __name__ == "__main__":
    main()
