"""Training and inference speed of candidate warm-start networks (issue: an efficient network, chosen by measurement).

For each candidate IR-Flow network: training patches/s (forward + backward + gradient clipping + Adam on a batch
of 64² patches, the pair synthesis excluded and timed apart) and the time of one restore of a 256² image, on
``--threads`` threads. ``--fast`` trains as ``optim.precision: bf16``, ``optim.fast_adam`` and ``optim.compile`` do
(flowprior/training.py); the restore is timed in float32 either way.

    python -m benchmarks.warmstart_speed --threads 2 --out docs/warmstart_speed.json
    python -m benchmarks.warmstart_speed --threads 2 --only lean-w48-d2-top16 --fast --batch 64
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from degradations import parse
from flowprior.conditioning import CHANNELS
from flowprior.train_warmstart import synthesize_pairs
from flowprior.training import forward_precision, make_adam
from flowprior.warmstart.irflow import IRFlow, IRFlowConfig

CANDIDATES = {
    "timeunet-w32 (today)": {"width": 32, "depth": 3, "unshuffle": 1, "cond_channels": 0},
    "timeunet-w48-unshuffle2": {"width": 48, "depth": 3, "unshuffle": 2, "cond_channels": CHANNELS},
    "lean-w32-d2-b1": {"arch": "lean", "width": 32, "depth": 2, "blocks": 1, "unshuffle": 2, "cond_channels": CHANNELS},
    "lean-w48-d2-b1": {"arch": "lean", "width": 48, "depth": 2, "blocks": 1, "unshuffle": 2, "cond_channels": CHANNELS},
    "lean-w48-d2-top16": {"arch": "lean", "width": 48, "depth": 2, "blocks": 1, "unshuffle": 2, "top_width": 16,
                          "cond_channels": CHANNELS},
    "lean-w32-d3-b1": {"arch": "lean", "width": 32, "depth": 3, "blocks": 1, "unshuffle": 2, "cond_channels": CHANNELS},
    "lean-w64-d2-b1": {"arch": "lean", "width": 64, "depth": 2, "blocks": 1, "unshuffle": 2, "cond_channels": CHANNELS},
    "lean-w32-d2-b2": {"arch": "lean", "width": 32, "depth": 2, "blocks": 2, "unshuffle": 2, "cond_channels": CHANNELS},
}


def time_training(model: IRFlow, batch: int, patch: int, repeats: int, fast: bool = False) -> float:
    """Seconds per optimizer step (median of ``repeats`` after two warm-up steps: a compile happens in the first)."""
    optimizer = make_adam(model, 1e-4, fast)
    if fast:
        model.net.compile(dynamic=False)
    generator = torch.Generator().manual_seed(0)
    hq = torch.rand(batch, 3, patch, patch, generator=generator)
    lq = (hq + 0.1 * torch.randn(hq.shape, generator=generator)).clamp(0, 1)
    cond = torch.rand(batch, CHANNELS, patch, patch) if model.conditioned else None
    times = []
    for _ in range(repeats + 2):
        started = time.perf_counter()
        with forward_precision("bf16" if fast else "fp32"):
            loss = model.loss_terms(hq, lq, generator, cond=cond)["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        times.append(time.perf_counter() - started)
    return sorted(times[2:])[len(times[2:]) // 2]


@torch.no_grad()
def time_restore(model: IRFlow, side: int, repeats: int) -> float:
    model.eval()
    lq = torch.rand(1, 3, side, side)
    cond = torch.rand(1, CHANNELS, side, side) if model.conditioned else None
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        model.restore(lq, torch.Generator(), cond)
        times.append(time.perf_counter() - started)
    return sorted(times[1:])[len(times[1:]) // 2]


def time_synthesis(batch: int, patch: int, repeats: int) -> float:
    op = parse("mask+noise+jpeg", {"mask.coverage": "0:0.15", "noise.sigma": "0:50", "jpeg.quality": "5:95"})
    hq = torch.rand(batch, 3, patch, patch, generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    for i in range(repeats):
        synthesize_pairs(hq, op, torch.Generator().manual_seed(i), conditioned=True)
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default=None, help="comma-separated candidate names")
    parser.add_argument("--fast", action="store_true", help="bf16 forward, fused channels-last Adam, compiled")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    names = args.only.split(",") if args.only else list(CANDIDATES)
    for name in names:
        config = IRFlowConfig(steps=1, consistency_weight=0.0, t1_fraction=0.5, **CANDIDATES[name])
        model = IRFlow(config)
        step = time_training(model, args.batch, args.patch, args.repeats, args.fast)
        restore = time_restore(IRFlow(config), 256, 3)  # a fresh, uncompiled float32 copy: the restore path
        rows[name] = {"parameters": sum(p.numel() for p in model.parameters()), "step_s": round(step, 4),
                      "train_patches_per_s": round(args.batch / step, 1), "restore_256_s": round(restore, 4)}
        print(name, rows[name], flush=True)
    synthesis = time_synthesis(args.batch, args.patch, args.repeats)
    print(f"pair synthesis (mask+noise+jpeg, batch {args.batch}): {synthesis:.4f} s", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"threads": args.threads, "fast": args.fast, "batch": args.batch, "patch": args.patch,
                       "candidates": rows,
                       "synthesis_s_per_batch": round(synthesis, 4)}, f, indent=1)


if __name__ == "__main__":
    main()
