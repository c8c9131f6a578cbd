"""When is a low σ̂ after JPEG texture? The auto rule's threshold, chosen on the training pool's validation crops.

After a JPEG the noise estimator reads a photo's fine texture as noise of σ̂ 2–5 (docs/benchmarks.md, "Noise before
JPEG"), so ``--degradation auto`` declares ``noise+jpeg`` for a clean-source JPEG and the restore runs the general
warm start told that σ̂ instead of the JPEG specialist. This measures, per validation crop and per source
(noise σ ∈ SIGMAS, then JPEG q ∈ QUALITIES, stored at 8 bits), the estimate and the default path's PSNR twice: with
the estimated noise and with the noise member dropped (the estimated JPEG alone). The rule "drop a σ̂ below T when a
JPEG was found" is then scored for every T: the mean PSNR per source and over all of them. Test photos are never read.

    python -m benchmarks.auto_jpeg_noise --crops 8 --size 256 --threads 1 --out docs/auto_jpeg_noise.jsonl
    python -m benchmarks.auto_jpeg_noise --score docs/auto_jpeg_noise.jsonl     # the table of T
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import flowprior
from benchmarks.table1_report import quantize
from benchmarks.tune_restore import validation_crops
from degradations import parse
from flowprior.auto_degradation import find_degradation
from flowprior.metrics import psnr

SIGMAS = (0, 2, 5, 10)
QUALITIES = (10, 30, 50, 75)
THRESHOLDS = (1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 8.0)


def noisy_jpeg(clean: torch.Tensor, sigma: int, quality: int, seed: int) -> torch.Tensor:
    """``clean`` with σ noise (none at 0), then a 4:2:0 JPEG at ``quality``, as an 8-bit file holds it."""
    spec, params = ("noise+jpeg", {"noise.sigma": sigma, "jpeg.quality": quality}) if sigma else (
        "jpeg", {"jpeg.quality": quality})
    op = parse(spec, params)
    return quantize(op.apply(clean, op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(seed)))).float()


def one_case(clean: torch.Tensor, sigma: int, quality: int, seed: int) -> dict:
    degraded = noisy_jpeg(clean, sigma, quality, seed)
    found = find_degradation(degraded)
    row = {"sigma": sigma, "quality": quality, "seed": seed, "found": found.spec,
           "sigma_hat": found.params.get("noise.sigma", 0.0), "quality_hat": found.params.get("jpeg.quality")}
    with_noise = flowprior.restore(degraded, found.spec, mask=found.mask, params=found.params)
    row["psnr_with_noise"] = round(float(psnr(clean, with_noise)), 3)
    members = [m for m in found.spec.split("+") if m != "noise"]
    if "noise" in found.spec and "jpeg" in members:
        params = {k: v for k, v in found.params.items() if not k.startswith("noise.")}
        without = flowprior.restore(degraded, "+".join(members), mask=found.mask, params=params)
        row["psnr_without_noise"] = round(float(psnr(clean, without)), 3)
    else:
        row["psnr_without_noise"] = row["psnr_with_noise"]
    return row


def score(rows: list[dict]) -> None:
    """The mean PSNR per source under "drop σ̂ < T after a JPEG", for every T (and never dropping)."""
    sources = sorted({(r["sigma"], r["quality"]) for r in rows})
    header = ["T"] + [f"σ{s} q{q}" for s, q in sources] + ["mean"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for threshold in (0.0, *THRESHOLDS):
        means = []
        for source in sources:
            mine = [r for r in rows if (r["sigma"], r["quality"]) == source]
            means.append(sum(r["psnr_without_noise"] if r["sigma_hat"] < threshold else r["psnr_with_noise"]
                             for r in mine) / len(mine))
        cells = [f"{threshold:g}"] + [f"{m:.3f}" for m in means] + [f"{sum(means) / len(means):.3f}"]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--root", default="data/train")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("docs/auto_jpeg_noise.jsonl"))
    parser.add_argument("--score", type=Path, default=None, help="only print the table of an earlier run's rows")
    args = parser.parse_args(argv)
    if args.score is not None:
        score([json.loads(line) for line in args.score.read_text().splitlines()])
        return
    torch.set_num_threads(args.threads)
    crops = validation_crops(args.root, args.crops, args.size, seed=3)
    rows = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as sink:
        for i, clean in enumerate(crops):
            for sigma in SIGMAS:
                for quality in QUALITIES:
                    row = {"crop": i, **one_case(clean[None], sigma, quality, seed=500 + 17 * i + sigma + quality)}
                    print(json.dumps(row), file=sink, flush=True)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    score(rows)


if __name__ == "__main__":
    main()
