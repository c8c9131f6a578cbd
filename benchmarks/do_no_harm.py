"""Do no harm: the default path on lightly degraded photos (JPEG q75–95, σ 1–2, a clean photo declared clean).

Each photo is degraded once (JPEG by Pillow's codec, noise from a fixed seed), quantized to 8 bits as a saved file
would be, and restored with ``flowprior.restore(..., recipe="auto")`` given the true parameters; the row records
PSNR of the input and of the output against the clean photo. The default path must never lower PSNR by more than
0.1 dB.

    python -m benchmarks.do_no_harm --images val --out docs/do_no_harm_val.jsonl     # choose on validation crops
    python -m benchmarks.do_no_harm --images test --out docs/do_no_harm.jsonl        # report on test photos
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import flowprior
from degradations import parse
from flowprior.io import read_image
from flowprior.metrics import psnr

#: name -> (degradation spec, operator arguments)
LIGHT = {
    "jpeg75": ("jpeg", {"jpeg.quality": 75}),
    "jpeg90": ("jpeg", {"jpeg.quality": 90}),
    "jpeg95": ("jpeg", {"jpeg.quality": 95}),
    "jpeg90-444": ("jpeg(subsampling=444)", {"jpeg.quality": 90}),
    "noise1": ("noise", {"noise.sigma": 1}),
    "noise2": ("noise", {"noise.sigma": 2}),
    "clean": ("identity", {}),
}
TEST_PHOTOS = ("kodak/kodim02.tif", "kodak/kodim07.tif", "sporco/monarch.png", "sporco/sail.png")


def quantize(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def photos(which: str, root_train: str, root_test: str, count: int) -> dict[str, torch.Tensor]:
    if which == "val":
        from flowprior.data import photo_sources

        _, val = photo_sources(root_train, patch_size=256, val_fraction=0.05, seed=0)
        crops = val.sample(count, torch.Generator().manual_seed(2000))
        return {f"val{i}": crops[i:i + 1].float() for i in range(len(crops))}
    return {name: read_image(Path(root_test) / name).pixels.float() for name in TEST_PHOTOS[:count]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", choices=("val", "test"), default="val")
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--settings", default=",".join(LIGHT))
    parser.add_argument("--train-root", default="data/train")
    parser.add_argument("--test-root", default="data/test")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="recipe override key=value")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = dict(item.split("=", 1) for item in args.set)
    log = open(args.out, "a") if args.out else None  # noqa: SIM115 (appended row by row, closed at exit)
    for name, clean in photos(args.images, args.train_root, args.test_root, args.count).items():
        for setting in args.settings.split(","):
            spec, params = LIGHT[setting]
            op = parse(spec, params)
            degraded = quantize(op.apply(clean, op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(7))))
            started = time.perf_counter()
            restored = quantize(flowprior.restore(degraded, spec, params=params, **overrides))
            row = {"image": name, "setting": setting, "input_psnr": round(float(psnr(clean, degraded)[0]), 3),
                   "psnr": round(float(psnr(clean, restored)[0]), 3), "seconds": round(time.perf_counter() - started, 2),
                   "overrides": overrides}
            row["change"] = round(row["psnr"] - row["input_psnr"], 3)
            print(json.dumps(row), flush=True)
            if log:
                log.write(json.dumps(row) + "\n")
                log.flush()


if __name__ == "__main__":
    main()
