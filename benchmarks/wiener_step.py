"""The Wiener step on validation crops (flowprior.warmstart.wiener): the warm start alone, its Wiener estimate at
several gains taken whole, and the SURE-weighted blend the default path runs — chosen here, never on test photos.

Prints one JSON line per σ: mean PSNR over the crops of the input, the warm start (``fast.yaml`` with the step off),
``wiener g<gain>`` (the Wiener estimate with that gain, taken whole) and ``sure`` (the step as the default path runs
it, SURE's β; its mean over the crops in ``beta``), and seconds per crop without and with the step (each run
restores every crop from scratch; on a busy machine their difference is noise, docs/benchmarks.md times the step
in Table 1).

Usage:
    python -m benchmarks.wiener_step --sigmas 1,2,5,7,10,15,25 --crops 16 --size 256 \
        --image-weighting uniform [--gains 1,1.5,2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.tune_restore import validation_crops
from degradations import parse
from flowprior.data import IMAGE_WEIGHTINGS
from flowprior.metrics import psnr
from flowprior.warmstart import get_initializer
from flowprior.warmstart.consistency import ROUNDING_STD, within_noise_of_input
from flowprior.warmstart.wiener import wiener_refine


def noisy_crops(clean: torch.Tensor, sigma: float, seed: int = 7) -> torch.Tensor:
    """``clean`` with white Gaussian noise of std ``sigma`` (0-255 scale), stored at 8 bits."""
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed), dtype=clean.dtype)
    return ((clean + sigma / 255 * noise) * 255).round().clamp(0, 255) / 255


def add_crop_arguments(parser: argparse.ArgumentParser, sigmas: str) -> None:
    """The validation crops' and the run's options, shared by the noise-step benchmarks."""
    parser.add_argument("--sigmas", default=sigmas)
    parser.add_argument("--root", default="data/train")
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--image-weighting", default="uniform", choices=sorted(IMAGE_WEIGHTINGS))
    parser.add_argument("--threads", type=int, default=2)


def clean_crops(args: argparse.Namespace) -> torch.Tensor:
    """Set the threads and cut the validation crops :func:`add_crop_arguments` describes."""
    torch.set_num_threads(args.threads)
    return validation_crops(args.root, args.crops, args.size, weighting=args.image_weighting)


def one_by_one(initializer, y: torch.Tensor, sigma: float) -> tuple[torch.Tensor, list[float]]:
    """The initializer on each crop alone (as a restore sees it) and its ``last_wiener`` per crop."""
    op = parse("noise", {"noise.sigma": sigma})
    outs, betas = [], []
    for image in y.split(1):
        params = op.sample_params(tuple(image.shape), torch.Generator().manual_seed(0))
        outs.append(initializer(image, op, params))
        betas.extend(getattr(initializer, "last_wiener", []))
    return torch.cat(outs), betas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_crop_arguments(parser, "1,2,5,7,10,15,25")
    parser.add_argument("--gains", default="1,1.5,2")
    args = parser.parse_args()
    clean = clean_crops(args)
    plain = get_initializer("irflow", seed=0, ensemble=8)
    stepped = get_initializer("irflow", seed=0, ensemble=8, wiener=1e3)  # every σ: SURE's β alone decides

    def score(x: torch.Tensor) -> float:
        return round(float(psnr(clean, x.clamp(0, 1)).mean()), 3)

    for sigma in (float(s) for s in args.sigmas.split(",")):
        y = noisy_crops(clean, sigma)
        started = time.perf_counter()
        pilot, _ = one_by_one(plain, y, sigma)
        pilot_seconds = (time.perf_counter() - started) / len(y)
        started = time.perf_counter()
        blended, betas = one_by_one(stepped, y, sigma)
        row = {"sigma": sigma, "input": score(y), "warm start": score(pilot), "sure": score(blended),
               "beta": round(sum(betas) / len(betas), 3),
               "seconds": {"warm start": round(pilot_seconds, 2),
                           "with the step": round((time.perf_counter() - started) / len(y), 2)}}
        variance = torch.tensor((sigma / 255) ** 2 + ROUNDING_STD**2)
        for gain in (float(g) for g in args.gains.split(",")):
            whole = within_noise_of_input(wiener_refine(y, pilot, variance, gain), y, torch.tensor([sigma / 255]))
            row[f"wiener g{gain:g}"] = score(whole)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
