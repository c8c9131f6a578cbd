"""How much of the dark-channel haze to remove (``HAZE_FRACTION``), chosen on validation crops only.

Each validation crop (256², the training pool's validation photos) is hazed with the default ``haze`` operator
(seed 100 + its index) and stored at 8 bits; the airlight and the guided-filter-refined haze ``1 − t`` are
estimated once, and the closed-form dehaze is scored for each fraction ω (``t = 1 − ω·haze``, the same as
``estimate_transmission(omega=ω)``). The rule: the best mean PSNR among the fractions that leave no crop below its
hazy input.

    python -m benchmarks.haze_fraction --count 48
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.table1_report import quantize
from benchmarks.tune_restore import validation_crops
from degradations import parse
from degradations.functional.dehaze import estimate_airlight, estimate_transmission, remove_haze
from flowprior.metrics import psnr

FRACTIONS = (0.665, 0.7125, 0.76, 0.8075, 0.855, 0.9025, 0.95)  # 0.95 (He et al.) x 0.70 ... 1.00


def scores(clean: torch.Tensor, seed: int) -> tuple[float, list[float]]:
    """(input PSNR, dehazed PSNR per fraction) of one crop (1, 3, H, W)."""
    op = parse("haze")
    x = clean.to(torch.float64)
    y = quantize(op.apply(x, op.sample_params(tuple(x.shape), torch.Generator().manual_seed(seed))))
    y = y.to(torch.float64)
    airlight = estimate_airlight(y)
    haze = 1.0 - estimate_transmission(y, airlight, omega=1.0, t_min=-1e9)  # linear in ω: refine once
    dehazed = [remove_haze(y, (1.0 - omega * haze).clamp(0.05, 1.0), airlight) for omega in FRACTIONS]
    return float(psnr(x, y)), [float(psnr(x, j)) for j in dehazed]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--train-root", default="data/train")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    crops = validation_crops(args.train_root, args.count, 256)
    rows = [scores(crops[i:i + 1], 100 + i) for i in range(crops.shape[0])]
    for k, omega in enumerate(FRACTIONS):
        gains = [out[k] - inp for inp, out in rows]
        print(f"omega {omega:.4f}: mean {statistics.mean(out[k] for _, out in rows):.2f} dB "
              f"(input {statistics.mean(inp for inp, _ in rows):.2f}), worst gain {min(gains):+.2f} dB, "
              f"{sum(g < 0 for g in gains)} of {len(rows)} below the input", flush=True)


if __name__ == "__main__":
    main()
