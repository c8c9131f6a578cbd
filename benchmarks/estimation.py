"""Degradation estimation (issue 15): noise σ, JPEG history and defect masks, measured on the test photos.

The noise and defect hyper-parameters of flowprior/estimate/ were chosen on the training pool's validation
photos (benchmarks/estimation_tuning.py); the JPEG ones on skimage's rocket, camera, coins, clock and
immunohistochemistry. This script measures on astronaut, coffee and chelsea (data/test), which tuning never
looked at. Degraded inputs come from the degradations library (8-bit, as stored in a PNG); seeds are explicit.

    python -m benchmarks.estimation                       # prints the tables, writes docs/estimation.json
    python -m benchmarks.estimation --parts noise,defects  # re-measure some parts, keep the others' numbers
    python -m benchmarks.estimation --quick               # one photo (a smoke run)
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from degradations import parse
from flowprior.estimate.defect_net import find_defects
from flowprior.estimate.jpeg import detect_jpeg_grid, inspect_jpeg_file
from flowprior.estimate.noise import estimate_noise
from flowprior.estimate.report import estimate_degradation

TEST_PHOTOS = ("astronaut", "coffee", "chelsea")
TUNING_PHOTOS = ("rocket", "camera", "coins", "clock", "immunohistochemistry")
SIGMAS = (2, 5, 10, 25, 50)
NOISE_JPEG_QUALITIES = (30, 50, 75, 90)
PIXEL_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


def photo(name: str) -> torch.Tensor:
    from skimage import data

    arr = getattr(data, name)()
    arr = arr[..., None] if arr.ndim == 2 else arr[..., :3]
    return torch.from_numpy(arr.astype(np.float64) / 255.0).permute(2, 0, 1)[None].float()


def degrade(
    clean: torch.Tensor, spec: str, params: dict, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(8-bit degraded image, observed mask or None)."""
    op = parse(spec, params)
    sampled = op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(seed))
    out = (op.apply(clean, sampled) * 255).round().clamp(0, 255) / 255
    return out, op.observed_mask(sampled)


def never_compressed(clean: torch.Tensor) -> torch.Tensor:
    """The photo halved by area averaging: erases any JPEG history the file itself had (8-bit again)."""
    return (F.interpolate(clean, scale_factor=0.5, mode="area") * 255).round() / 255


def noise_errors(names) -> dict:
    rows = {"clean": [], "noisy": [], "jpeg": []}
    for i, name in enumerate(names):
        x = photo(name)
        rows["clean"].append({"photo": name, "sigma_hat": max(estimate_noise(x).sigma)})
        for s in SIGMAS:
            y, _ = degrade(x, "noise", {"noise.sigma": s}, seed=100 + s + i)
            err = max(abs(e - s) for e in estimate_noise(y).sigma)
            rows["noisy"].append({"photo": name, "sigma": s, "abs_error": err})
            for q in NOISE_JPEG_QUALITIES:
                y, _ = degrade(x, "noise+jpeg", {"noise.sigma": s, "jpeg.quality": q}, seed=200 + s + q + i)
                found = detect_jpeg_grid(y)
                est = estimate_noise(y, found.luma_table if found.detected else None, found.grid_offset)
                rows["jpeg"].append(
                    {
                        "photo": name,
                        "sigma": s,
                        "quality": q,
                        "sigma_hat": est.sigma[0],
                        "abs_error": abs(est.sigma[0] - s),
                        "jpeg_found": found.detected,
                    }
                )
    return rows


def jpeg_pixel_errors(names) -> dict:
    found_rows, false_pos = [], []
    for i, name in enumerate(names):
        x = never_compressed(photo(name))
        for q in PIXEL_QUALITIES:
            for crop in ((0, 0), (3, 5)):
                y, _ = degrade(x, "jpeg", {"jpeg.quality": q}, seed=0)
                y = y[..., crop[0] :, crop[1] :]  # a cropped JPEG: the grid no longer starts at (0, 0)
                r = detect_jpeg_grid(y)
                found_rows.append(
                    {
                        "photo": name,
                        "quality": q,
                        "crop": list(crop),
                        "detected": r.detected,
                        "quality_hat": r.quality,
                        "abs_error": None if r.quality is None else abs(r.quality - q),
                        "grid_ok": r.grid_offset == (-crop[0] % 8, -crop[1] % 8),
                    }
                )
        for s in (0, 2, 5, 15):
            for crop in ((0, 0), (1, 2), (5, 7)):
                y = x if s == 0 else degrade(x, "noise", {"noise.sigma": s}, seed=300 + s + i)[0]
                r = detect_jpeg_grid(y[..., crop[0] :, crop[1] :])
                false_pos.append(
                    {"photo": name, "sigma": s, "crop": list(crop), "detected": r.detected, "score": r.score}
                )
    return {"compressed": found_rows, "never_compressed": false_pos}


def jpeg_file_matches(names) -> dict:
    rows = []
    for name in names[:1]:
        arr = (photo(name)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8).squeeze()
        for q in range(1, 101):
            for sub, code in (("444", 0), ("420", 2)):
                buf = io.BytesIO()
                Image.fromarray(arr).save(buf, format="JPEG", quality=q, subsampling=code)
                info = inspect_jpeg_file(io.BytesIO(buf.getvalue()))
                same = q if info.match.quality == q else info.match.quality
                rows.append(
                    {
                        "quality": q,
                        "subsampling": sub,
                        "quality_hat": same,
                        "exact": info.match.exact,
                        "subsampling_hat": info.subsampling,
                    }
                )
    return {"files": rows}


def defect_scores(names, seeds=(11, 12, 13)) -> list:
    settings = {
        "mask": ("mask", {}),
        "mask+noise5+jpeg50": ("mask+noise+jpeg", {"noise.sigma": 5, "jpeg.quality": 50}),
    }
    rows = []
    for name in names:
        x = photo(name)
        for kind in ("holes", "strokes"):
            for label, (spec, params) in settings.items():
                for seed in seeds:
                    y, observed = degrade(x, spec, {**params, "mask.kind": kind}, seed=seed)
                    truth = observed[0, 0].numpy() < 0.5
                    found = detect_jpeg_grid(y)
                    sigma = float(
                        np.mean(
                            estimate_noise(
                                y, found.luma_table if found.detected else None, found.grid_offset
                            ).sigma
                        )
                    )
                    pred = find_defects(y, sigma).missing
                    tp = float((pred & truth).sum())
                    # a black fill over a black scene changed nothing: recall of the pixels it did change
                    visible = truth & (x[0].amax(0).numpy() > VISIBLE_LEVEL / 255)
                    rows.append(
                        {
                            "photo": name,
                            "kind": kind,
                            "setting": label,
                            "seed": seed,
                            "precision": tp / max(pred.sum(), 1),
                            "recall": tp / max(truth.sum(), 1),
                            "recall_visible": float((pred & visible).sum()) / max(visible.sum(), 1),
                        }
                    )
    return rows


VISIBLE_LEVEL = 20  # 0–255: a defect pixel whose clean max(R, G, B) is below this was (nearly) black already


def auto_cases(names, sigma=15, quality=40) -> list:
    """estimate_degradation on each photo after noise σ + JPEG q (the contract's example case)."""
    rows = []
    for i, name in enumerate(names):
        y, _ = degrade(
            photo(name), "noise+jpeg", {"noise.sigma": sigma, "jpeg.quality": quality}, seed=400 + i
        )
        est = estimate_degradation(y)
        rows.append({"photo": name, "spec": est.spec, "params": est.params, "confidence": est.confidence})
    return rows


def summarize(results: dict) -> list[str]:
    """Markdown table rows: one measured quantity per row, against its target."""
    noise, jpeg, defects = results["noise"], results["jpeg_pixels"], results["defects"]
    rows = ["| quantity | measured | target |", "|---|---|---|"]
    rows.append(f"| noise, clean photos: max σ̂ | {max(r['sigma_hat'] for r in noise['clean']):.2f} | ≤ 1.5 |")
    rows.append(
        f"| noise σ ∈ [2, 50]: max abs error | {max(r['abs_error'] for r in noise['noisy']):.2f} | ≤ 1.0 |"
    )
    for q in NOISE_JPEG_QUALITIES:
        sub = [r for r in noise["jpeg"] if r["quality"] == q]
        worst = max(sub, key=lambda r: r["abs_error"])
        rows.append(
            f"| noise then JPEG q{q}: max abs error (σ = {worst['sigma']}, {worst['photo']}) | "
            f"{worst['abs_error']:.2f} | ≤ 2.0 |"
        )
    hits = [r for r in jpeg["compressed"]]
    errs = [r["abs_error"] for r in hits if r["abs_error"] is not None]
    within = sum(1 for r in hits if r["abs_error"] is not None and r["abs_error"] <= 10)
    rows.append(
        f"| JPEG from pixels, q 10–90: detected | {sum(r['detected'] for r in hits)}/{len(hits)} | all |"
    )
    rows.append(
        f"| JPEG from pixels: quality within ±10 | {within}/{len(hits)} (max error {max(errs)}) | all |"
    )
    rows.append(
        f"| JPEG from pixels: grid offset right | {sum(r['grid_ok'] for r in hits)}/{len(hits)} | — |"
    )
    fp = jpeg["never_compressed"]
    rows.append(
        f"| JPEG false positives, never-compressed | {sum(r['detected'] for r in fp)}/{len(fp)} "
        f"({100 * np.mean([r['detected'] for r in fp]):.1f} %) | ≤ 5 % |"
    )
    files = results["jpeg_files"]["files"]
    exact = sum(
        r["exact"] and r["quality_hat"] == r["quality"] and r["subsampling_hat"] == r["subsampling"]
        for r in files
    )
    rows.append(
        f"| JPEG files q 1–100 (4:4:4, 4:2:0): exact quality and subsampling | {exact}/{len(files)} | all |"
    )
    for kind in ("holes", "strokes"):
        for setting in ("mask", "mask+noise5+jpeg50"):
            sub = [r for r in defects if r["kind"] == kind and r["setting"] == setting]
            rows.append(
                f"| defects, {kind}, {setting}: min precision / min recall (mean) | "
                f"{min(r['precision'] for r in sub):.3f} / {min(r['recall'] for r in sub):.3f} "
                f"({np.mean([r['precision'] for r in sub]):.3f} / {np.mean([r['recall'] for r in sub]):.3f}) "
                f"| ≥ 0.8 |"
            )
            rows.append(
                f"| defects, {kind}, {setting}: min recall of visible defects (mean) | "
                f"{min(r['recall_visible'] for r in sub):.3f} "
                f"({np.mean([r['recall_visible'] for r in sub]):.3f}) | — |"
            )
    for r in results.get("auto", []):
        rows.append(
            f"| auto, {r['photo']} σ 15 + JPEG q40: spec, params | {r['spec']}, {r['params']} | "
            "noise+jpeg, σ ±2, q ±10 |"
        )
    return rows


PARTS = {
    "noise": noise_errors,
    "jpeg_pixels": jpeg_pixel_errors,
    "jpeg_files": jpeg_file_matches,
    "defects": defect_scores,
    "auto": auto_cases,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one photo (a smoke run)")
    parser.add_argument("--photos", default=",".join(TEST_PHOTOS), help="skimage.data names, comma separated")
    parser.add_argument("--output", default="docs/estimation.json")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma separated, of {', '.join(PARTS)}")
    args = parser.parse_args()
    names = args.photos.split(",")[:1] if args.quick else args.photos.split(",")
    start = time.perf_counter()
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.is_file() else {}
    results["photos"] = names
    for part in args.parts.split(","):
        results[part] = PARTS[part](names)
    results["seconds"] = round(time.perf_counter() - start, 1)
    output.write_text(json.dumps(results, indent=1, default=float))
    missing = [part for part in ("noise", "jpeg_pixels", "defects") if part not in results]
    # --parts updates only those parts of OUTPUT; the summary table needs all three
    print("\n".join(summarize(results)) if not missing else f"no summary: {args.output} lacks {', '.join(missing)}")
    print(f"({results['seconds']} s; details in {args.output})")


if __name__ == "__main__":
    main()
