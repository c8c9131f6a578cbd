"""Table 1 of Helminger et al.: flowprior against classical peers, DIP and the input, on held-out test photos.

Test set: 256x256 centre crops of eight colour photos from ``data/test`` plus two full 500x500 photos; settings
jpeg10, jpeg30, noise5, noise25, multi (``settings.py``), each degraded once with a seed fixed by (image set,
image, setting), so every method sees the same input. Every output is quantized to 8 bits (as a saved file would
be) before PSNR, SSIM and MS-SSIM (``flowprior.metrics``: RGB, data range 1, no border). Seconds per image are
wall time of the method alone (model loading excluded) on the threads given by ``--threads``.

Peers' parameters come from ``benchmarks/peer_params.json``, written by ``tune`` on validation crops of the
training pool (never the test images); a peer without a tuned value runs with its grid's middle point and its
rows say ``"tuned": false``.

Usage:
    python -m benchmarks.table1 tune [--methods bm3d,nlm,tv,wavelet,dip] [--crops 8] [--dip-crops 4] \
        [--factors 0.35,...,2.8]
    python -m benchmarks.table1 run [--images 256crops,full] [--settings ...] [--methods ...] \
        [--out docs/table1.json] [--recipe auto] [--model default] \
        [--figure docs/figures/table1.png] [--resume]
    python -m benchmarks.table1 report [--out docs/table1.json] [--figure docs/figures/table1.png]

Rows are JSON lines appended as they finish: a killed run keeps its results and ``--resume`` skips done rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from benchmarks.cases import CROP_SIZE, degraded_case, load_test_set
from benchmarks.peers import FACTORS, PEERS, available_peers, run_peer
from benchmarks.settings import SETTINGS
from benchmarks.table1_report import DEFAULT_PAIRS, make_figure, markdown_table, quantize, read_rows, save_png
from flowprior.metrics import ms_ssim, psnr, ssim

#: flowprior = the cold recipes (--recipe, default auto); flowprior-fast = recipes/restore/fast.yaml (warm start)
METHODS = ("input", "flowprior", "flowprior-fast", "bm3d", "nlm", "tv", "wavelet", "dip")
PEER_PARAMS = Path(__file__).resolve().parent / "peer_params.json"


def measure(clean: Tensor, restored: Tensor) -> dict[str, float]:
    out = {"psnr": float(psnr(clean, restored)[0]), "ssim": float(ssim(clean, restored)[0])}
    try:
        out["ms_ssim"] = float(ms_ssim(clean, restored)[0])
    except ValueError:  # below 161 px per side five scales do not fit; the column stays empty
        out["ms_ssim"] = None
    return out


class FlowpriorMethod:
    """flowprior's restore path with a fixed recipe and model, loaded once."""

    def __init__(self, recipe: str | None, model: str, warm_start: bool = False) -> None:
        from flowprior.restoration import load_model

        # warm_start=False: "auto" means the cold recipe tuned per degradation (the rows of docs/table1.json)
        self.recipe, self.model, self.warm_start = recipe, model, warm_start
        self.prior = load_model(model)
        self.sha256 = getattr(self.prior, "sha256", None)

    def __call__(self, degraded: Tensor, mask: Tensor | None, setting: str) -> Tensor:
        from flowprior.recipe import find_recipe
        from flowprior.restoration import auto_recipe_name, build_recipe, restore_tensor

        spec, operator = SETTINGS[setting]
        name = auto_recipe_name(spec, warm_start=self.warm_start) if self.recipe == "auto" else self.recipe
        recipe = build_recipe(find_recipe(name, "restore"), {"degradation": spec, "model": self.model}, operator)
        return restore_tensor(degraded, recipe, mask=mask, prior=self.prior).image

    def describe(self) -> dict:
        return {"model": self.model, "model_sha256": self.sha256, "recipe": self.recipe}


def load_peer_params(path: Path) -> dict:
    if not path.is_file():
        print(f"warning: {path} not found; peers run with untuned factor-1 defaults (run `table1.py tune`)",
              file=sys.stderr)
        return {}
    return json.loads(path.read_text())["params"]


def _check_resume(rows: list[dict], flowprior: FlowpriorMethod | None, out: Path) -> None:
    if flowprior is None:
        return
    old = {r.get("model_sha256") for r in rows if r["method"] == "flowprior"}
    if old and old != {flowprior.sha256}:
        raise SystemExit(f"{out} holds flowprior rows of another model ({sorted(map(str, old))}); "
                         f"use a new --out for {flowprior.model}")


def warm_up(methods: list[str], ours: dict) -> None:
    """One untimed call of each method on a small image, so lazy imports and first-call setup are not timed."""
    ramp = torch.linspace(0.2, 0.8, 64)  # smooth: pure noise sends flowprior's solver into NaN rollbacks
    x = torch.stack([ramp.expand(64, 64), ramp[:, None].expand(64, 64), torch.full((64, 64), 0.5)])[None]
    for method in methods:
        if ours.get(method) is not None:
            ours[method](x, None, "noise25")
        elif method == "dip":
            import benchmarks.dip  # noqa: F401 -- a DIP fit is too slow to warm up with; importing is the one-off cost
        elif method in PEERS:
            run_peer(method, x, None, "noise25")


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    missing = [m for m in methods if m in PEERS and m not in available_peers()]
    if missing:
        print(f"warning: skipping {missing}: their packages are not installed", file=sys.stderr)
        methods = [m for m in methods if m not in missing]
    if out.exists() and out.stat().st_size and not args.resume:
        raise SystemExit(f"{out} exists: pass --resume to continue it, or choose another --out")
    rows = read_rows(out) if out.exists() else []
    done = {(r["images"], r["image"], r["setting"], r["method"]) for r in rows}
    flowprior = FlowpriorMethod(args.recipe, args.model) if "flowprior" in methods else None
    _check_resume(rows, flowprior, out)
    ours = {"flowprior": flowprior,
            "flowprior-fast": FlowpriorMethod("fast", args.model) if "flowprior-fast" in methods else None}
    tuned = load_peer_params(Path(args.peer_params)) if set(methods) & (set(PEERS) - {"input"}) else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    warm_up(methods, ours)
    image_dir = Path(args.save_images) if args.save_images else None
    names = args.only.split(",") if args.only else None
    for image_set in args.images.split(","):
        for name, clean in load_test_set(args.test_root, image_set, names=names).items():
            for setting in args.settings.split(","):
                degraded, mask, seed = degraded_case(clean, image_set, name, setting)
                case_dir = image_dir / image_set / name / setting if image_dir else None
                if case_dir:
                    save_png(clean, case_dir / "_clean.png")
                    save_png(degraded, case_dir / "_degraded.png")
                for method in methods:
                    if (image_set, name, setting, method) in done:
                        continue
                    row = {"images": image_set, "image": name, "setting": setting, "method": method,
                           "size": list(clean.shape[-2:]), "seed": seed}
                    if method in ours:
                        started = time.perf_counter()
                        restored = ours[method](degraded, mask, setting)
                        row.update(ours[method].describe())
                    else:
                        params = tuned.get(method, {}).get(setting)
                        row["params"] = params if params is not None else PEERS[method].default_params(setting)
                        if PEERS[method].grid(setting):
                            row["tuned"] = params is not None
                        started = time.perf_counter()
                        restored = run_peer(method, degraded, mask, setting, row["params"])
                    row["seconds"] = round(time.perf_counter() - started, 3)
                    restored = quantize(restored)
                    row.update({k: (None if v is None else round(v, 5))
                                for k, v in measure(clean.double(), restored).items()})
                    if case_dir:
                        save_png(restored, case_dir / f"{method}.png")
                    with out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(f"{image_set:8s} {name:12s} {setting:8s} {method:10s} PSNR {row['psnr']:6.2f}  "
                          f"SSIM {row['ssim']:.4f}  {row['seconds']:8.2f} s", flush=True)
    report(args)


def report(args: argparse.Namespace) -> None:
    rows = read_rows(Path(args.out))
    print(markdown_table(rows, METHODS))
    if args.figure and args.save_images:
        written = make_figure(rows, Path(args.save_images), args.pairs, Path(args.figure))
        print(f"figure: {written}" if written else "figure: no case has all its images yet")


def tune(args: argparse.Namespace) -> None:
    from benchmarks.table1_tune import tune_peers

    tune_peers(args)


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"factors must be positive, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--settings", default=",".join(SETTINGS))
    common.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    results = argparse.ArgumentParser(add_help=False)
    results.add_argument("--out", default="docs/table1.json", help="JSON lines, one row per image x setting x method")
    results.add_argument("--figure", default="docs/figures/table1.png", help="PNG of crops side by side; '' = none")
    results.add_argument("--save-images", default="runs/table1/images",
                         help="where outputs are kept as PNG (needed for the figure); '' = nowhere")
    results.add_argument("--pairs", default=DEFAULT_PAIRS, help="figure cases, image:setting,...")

    p = sub.add_parser("run", parents=[common, results], help="evaluate methods on the test images")
    p.add_argument("--images", default=f"{CROP_SIZE}crops,full", help="<N>crops and/or full")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--only", default=None, help="restrict to these image names, e.g. monarch,sail")
    p.add_argument("--recipe", default="auto", help="'auto' (the recipe tuned per degradation), a name or a path")
    p.add_argument("--model", default="default", help="'default' (embedded) or a checkpoint path")
    p.add_argument("--peer-params", default=str(PEER_PARAMS))
    p.add_argument("--test-root", default="data/test")
    p.add_argument("--resume", action="store_true", help="continue --out, skipping rows already there")
    p.set_defaults(func=run)

    p = sub.add_parser("report", parents=[results], help="print the Markdown table (and figure) of --out")
    p.set_defaults(func=report)

    p = sub.add_parser("tune", parents=[common], help="pick peer parameters on validation crops")
    p.add_argument("--methods", default=",".join(m for m in PEERS if m != "input"))
    p.add_argument("--root", default="data/train", help="training pool; its held-out photos give the crops")
    p.add_argument("--crops", type=int, default=8)
    p.add_argument("--dip-crops", type=int, default=4, help="DIP is slow: tune it on the first N crops only")
    p.add_argument("--size", type=int, default=CROP_SIZE)
    p.add_argument("--factors", type=_floats, default=FACTORS,
                   help="multipliers of each setting's BASE_SIGMA to try, e.g. 2,2.8,4 (default: peers.FACTORS)")
    p.add_argument("--out", default=str(PEER_PARAMS))
    p.set_defaults(func=tune)

    args = parser.parse_args(argv)
    if hasattr(args, "threads"):
        torch.set_num_threads(args.threads)
        import cv2

        cv2.setNumThreads(args.threads)
    args.func(args)


if __name__ == "__main__":
    main()
