"""``--degradation auto`` end to end: no parameters given, against the restore told the true parameters.

Every Table 1 case (the same crops, seeds and 8-bit inputs as ``benchmarks.table1``) is restored twice with the
default path (``flowprior.restore(..., recipe="auto")``): once with the true degradation and parameters (and the
true mask), once with ``degradation="auto"`` and nothing else. Issue 15's target: auto within 0.3 dB of the true
parameters on every setting.

    python -m benchmarks.auto_e2e --out docs/auto_e2e.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import flowprior
from benchmarks.cases import degraded_case, load_test_set
from benchmarks.settings import SETTINGS
from flowprior.auto_degradation import find_degradation
from flowprior.metrics import psnr


def one_case(clean: torch.Tensor, image_set: str, name: str, setting: str) -> dict:
    degraded, mask, _ = degraded_case(clean, image_set, name, setting)
    spec, params = SETTINGS[setting]
    told = flowprior.restore(degraded, spec, mask=mask, params=params)
    started = time.perf_counter()
    found = find_degradation(degraded)
    auto = flowprior.restore(degraded, "auto")
    seconds = time.perf_counter() - started
    return {"image": name, "setting": setting, "input": round(float(psnr(clean, degraded)), 2),
            "true_params": round(float(psnr(clean, told)), 2), "auto": round(float(psnr(clean, auto)), 2),
            "found": found.spec, "found_params": found.params, "auto_seconds": round(seconds, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-set", default="256crops")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--images", default=None, help="comma-separated crop names (default: all 8)")
    parser.add_argument("--test-root", default="data/test")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("docs/auto_e2e.jsonl"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name, clean in load_test_set(
        args.test_root, args.image_set, args.images.split(",") if args.images else None
    ).items():
        for setting in args.settings.split(","):
            row = one_case(clean, args.image_set, name, setting)
            print(json.dumps(row), flush=True)
            rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for setting in args.settings.split(","):
        mine = [r for r in rows if r["setting"] == setting]
        gap = sum(r["auto"] - r["true_params"] for r in mine) / len(mine)
        print(f"{setting}: auto - true params = {gap:+.2f} dB over {len(mine)} images")


if __name__ == "__main__":
    main()
