"""Tuning of the noise and defect estimators (issue 15) on the training pool's *validation* photos only.

The photos are the validation side of :func:`flowprior.data.split_pool` over data/train (22 files), shrunk by
area averaging (factor >= 2, long side <= 640) so that their own JPEG/WebP history and grain mostly go; the
test photos of benchmarks/estimation.py are never read here.

    python -m benchmarks.estimation_tuning --part floor     # texture floor F of the never-compressed σ̂
    python -m benchmarks.estimation_tuning --part jpeg      # σ̂ before JPEG, on the clean-source photos
    python -m benchmarks.estimation_tuning --part defects   # false masks without defects; precision / recall
    python -m benchmarks.estimation_tuning --part learned --checkpoint runs/defects/best.pt   # its threshold
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import flowprior.estimate.noise as noise_module
from benchmarks.estimation import NOISE_JPEG_QUALITIES, SIGMAS, degrade
from flowprior.data import list_photos, split_pool
from flowprior.estimate.defects import detect_defects
from flowprior.estimate.jpeg import ijg_tables
from flowprior.estimate.report import estimate_degradation

FLOORS = (0.0, 1.0, 1.25, 1.5, 1.75)
CLEAN_LIMIT = 1.5  # a validation photo is "clean-source" when its own σ̂ (with the chosen floor) is below


def validation_photos(root: str = "data/train", long_side: int = 640) -> list[tuple[str, torch.Tensor]]:
    _, paths = split_pool(list_photos(root), 0.05, root=root)
    photos = []
    for path in paths:
        arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
        x = torch.from_numpy(arr).permute(2, 0, 1)[None].float()
        factor = max(2, math.ceil(max(x.shape[-2:]) / long_side))
        photos.append(
            (str(path), (F.interpolate(x, scale_factor=1 / factor, mode="area") * 255).round() / 255)
        )
    return photos


def floor_sweep(photos) -> None:
    """Per floor F: photos meeting clean σ̂ ≤ 1.5, |σ̂ − σ| ≤ 1 for σ ≤ 25, and both with σ = 50 too."""
    chosen, noise_module._TEXTURE_FLOOR = noise_module._TEXTURE_FLOOR, 0.0  # measure the raw level
    raw = []
    for i, (_, x) in enumerate(photos):
        levels = {0: noise_module.estimate_noise(x).sigma}
        for s in SIGMAS:
            y, _ = degrade(x, "noise", {"noise.sigma": s}, seed=100 + s + i)
            levels[s] = noise_module.estimate_noise(y).sigma
        raw.append(levels)
    noise_module._TEXTURE_FLOOR = chosen
    for floor in FLOORS:
        fixed = [{s: [math.sqrt(max(v**2 - floor**2, 0.0)) for v in vs] for s, vs in r.items()} for r in raw]
        clean = sum(max(r[0]) <= 1.5 for r in fixed)
        low = sum(all(abs(v - s) <= 1.0 for s in SIGMAS[:-1] for v in r[s]) for r in fixed)
        every = sum(max(r[0]) <= 1.5 and all(abs(v - s) <= 1.0 for s in SIGMAS for v in r[s]) for r in fixed)
        print(f"F = {floor:4.2f}: clean ok {clean}/{len(raw)}, σ ≤ 25 ok {low}, all targets {every}")


def jpeg_errors(photos) -> None:
    """σ̂ before JPEG (the true luma table given: the grid search is measured in benchmarks/estimation.py)."""
    luma_tables, _ = ijg_tables()
    clean = [(n, x) for n, x in photos if max(noise_module.estimate_noise(x).sigma) <= CLEAN_LIMIT]
    print(f"{len(clean)} clean-source photos")
    for s in SIGMAS:
        cells = []
        for q in NOISE_JPEG_QUALITIES:
            errors = []
            for _, x in clean:
                y, _ = degrade(x, "noise+jpeg", {"noise.sigma": s, "jpeg.quality": q}, seed=200 + s + q)
                errors.append(noise_module.estimate_noise(y, luma_tables[q - 1]).sigma[0] - s)
            ok = sum(abs(e) <= 2.0 for e in errors)
            cells.append(f"q{q}: median {np.median(errors):+.2f}, within 2: {ok}/{len(errors)}")
        print(f"σ {s:2d} | " + " | ".join(cells))


def defect_scores(photos) -> None:
    settings = {
        "clean fill": ("mask", {}),
        "σ 5 + q50": ("mask+noise+jpeg", {"noise.sigma": 5, "jpeg.quality": 50}),
    }
    for kind in ("holes", "strokes"):
        for label, (spec, params) in settings.items():
            scores = []
            for i, (_, x) in enumerate(photos):
                y, observed = degrade(x, spec, {**params, "mask.kind": kind}, seed=500 + i)
                truth = observed[0, 0].numpy() < 0.5
                pred = detect_defects(y, params.get("noise.sigma", 0.0)).missing
                hit = float((pred & truth).sum())
                scores.append((hit / max(pred.sum(), 1), hit / max(truth.sum(), 1)))
            p, r = np.array(scores).T
            print(
                f"{kind:7s} {label:10s}: precision median {np.median(p):.2f} (>= 0.8: {(p >= 0.8).sum()}), "
                f"recall median {np.median(r):.2f} (>= 0.8: {(r >= 0.8).sum()}) of {len(p)}"
            )


LEARNED_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
LEARNED_SETTINGS = {
    "clean fill": ("mask", {}),
    "σ 5 + q50": ("mask+noise+jpeg", {"noise.sigma": 5, "jpeg.quality": 50}),
    "σ 15 + q40": ("mask+noise+jpeg", {"noise.sigma": 15, "jpeg.quality": 40}),
}


def learned_scores(photos, checkpoint: str, grow_to: float | None = None) -> None:
    """The learned detector's pixel precision / recall per threshold (pooled over the photos, and the number of
    photos with both >= 0.8), and its false-mask share on photos without defects. ``grow_to``: the hysteresis'
    low threshold (pieces found at each threshold grow over their pixels above it)."""
    from flowprior.estimate.defect_net import image_probability, load_defect_net, mask_from_probability

    model = load_defect_net(checkpoint)
    for kind in ("holes", "strokes"):
        for label, (spec, params) in LEARNED_SETTINGS.items():
            counts = {t: [] for t in LEARNED_THRESHOLDS}
            for i, (_, x) in enumerate(photos):
                y, observed = degrade(x, spec, {**params, "mask.kind": kind}, seed=500 + i)
                truth = observed[0, 0].numpy() < 0.5
                probability = image_probability(y, model)
                for t in LEARNED_THRESHOLDS:
                    pred = mask_from_probability(probability, t, grow_to).missing
                    counts[t].append((float((pred & truth).sum()), float(pred.sum()), float(truth.sum())))
            cells = []
            for t, rows in counts.items():
                hit, found, true = np.array(rows).T
                p, r = hit / np.maximum(found, 1), hit / np.maximum(true, 1)
                both = int(((p >= 0.8) & (r >= 0.8)).sum())
                cells.append(f"t{t}: P {hit.sum() / max(found.sum(), 1):.2f} R {hit.sum() / max(true.sum(), 1):.2f} ({both})")
            print(f"{kind:7s} {label:10s} | " + " | ".join(cells))
    for label, (spec, params, seed) in FALSE_MASK_SETTINGS.items():
        shares = {t: [] for t in LEARNED_THRESHOLDS}
        for i, (_, x) in enumerate(photos):
            y, _ = degrade(x, spec, params, seed=seed + i)
            probability = image_probability(y, model)
            for t in LEARNED_THRESHOLDS:
                shares[t].append(mask_from_probability(probability, t, grow_to).coverage)
        print(f"no defects, {label:10s} | " + " | ".join(
            f"t{t}: photos >= 0.2 %: {(np.array(v) >= 0.002).sum()}, largest {max(v):.2%}" for t, v in shares.items()))


FALSE_MASK_SETTINGS = {
    "σ 15 + q40": ("noise+jpeg", {"noise.sigma": 15, "jpeg.quality": 40}, 400),
    "σ 25": ("noise", {"noise.sigma": 25}, 700),
    "q30": ("jpeg", {"jpeg.quality": 30}, 600),
    "clean": ("identity", {}, 800),
}


def false_masks(photos) -> None:
    """Photos where ``estimate_degradation`` adds a ``mask`` though nothing was masked (its coverage floor)."""
    for label, (spec, params, seed) in list(FALSE_MASK_SETTINGS.items())[:2]:
        coverage = []
        for i, (_, x) in enumerate(photos):
            y, _ = degrade(x, spec, params, seed=seed + i)
            found = estimate_degradation(y)
            coverage.append(found.report["defects"]["coverage"] if "mask" in found.spec.split("+") else 0.0)
        c = np.array(coverage)
        print(f"no defects, {label:10s}: false mask on {(c > 0).sum()} of {len(c)} (largest {c.max():.2%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("floor", "jpeg", "defects", "learned"), required=True)
    parser.add_argument("--checkpoint", default=None, help="--part learned: the detector (default: the embedded one)")
    parser.add_argument("--grow-to", type=float, default=None, help="--part learned: the hysteresis' low threshold")
    parser.add_argument("--limit", type=int, default=None, help="first N validation photos (a quick run)")
    args = parser.parse_args()
    photos = validation_photos()[: args.limit]
    if args.part == "defects":
        false_masks(photos)
    if args.part == "learned":
        from flowprior.weights import embedded_path

        learned_scores(photos, args.checkpoint or str(embedded_path("defects")[0]), args.grow_to)
        return
    {"floor": floor_sweep, "jpeg": jpeg_errors, "defects": defect_scores}[args.part](photos)


if __name__ == "__main__":
    main()
