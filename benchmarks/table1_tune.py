"""Tune the Table 1 peers on validation crops of the training pool (never the test images).

For every (peer, setting) each point of the peer's grid (``peers.PEERS[name].grid``) restores every crop; the
point with the best mean PSNR (outputs quantized to 8 bits, as in the benchmark) is written to
``benchmarks/peer_params.json`` together with all scores. The file is rewritten after each (peer, setting), and
entries of peers or settings not tuned in this call are kept, so tuning can be split over several calls, also
calls running at the same time (each write re-reads the file; different calls must tune different entries).

The Deep Image Prior is tuned on the first ``--dip-crops`` crops only, with one fit per crop: the outputs at all
grid iteration counts come from the same run (``dip.deep_image_prior(snapshots=...)``).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from pathlib import Path

from torch import Tensor

from benchmarks.dip import deep_image_prior
from benchmarks.peers import BASE_SIGMA, DIP_ITERATIONS, FACTORS, PEERS, available_peers, run_peer
from benchmarks.settings import degrade
from benchmarks.table1_report import quantize
from flowprior.metrics import psnr

DEGRADE_SEED = 7  # the same validation degradations as benchmarks/tune_restore.py


def score_grid(method: str, clean: Tensor, degraded: Tensor, mask: Tensor | None, setting: str,
               factors: tuple[float, ...] = FACTORS) -> list[dict]:
    """[{"params", "psnr", "seconds"}] for each grid point (``factors`` of the setting's BASE_SIGMA): mean PSNR over
    the crops and mean seconds per crop."""
    scores = []
    for params in PEERS[method].grid(setting, factors=factors):
        started, values = time.perf_counter(), []
        for i in range(clean.shape[0]):
            m = None if mask is None else mask[i:i + 1]
            restored = run_peer(method, degraded[i:i + 1], m, setting, params)
            values.append(float(psnr(clean[i:i + 1].double(), quantize(restored))[0]))
        scores.append({"params": params, "psnr": round(sum(values) / len(values), 4),
                       "seconds": round((time.perf_counter() - started) / len(values), 3)})
    return scores


def score_dip(clean: Tensor, degraded: Tensor, mask: Tensor | None, seed: int = 0) -> list[dict]:
    """Like :func:`score_grid` for the DIP's iteration counts, one fit per crop (``restore_dip`` uses ``seed`` 0)."""
    total = {n: 0.0 for n in DIP_ITERATIONS}
    started = time.perf_counter()
    for i in range(clean.shape[0]):
        m = None if mask is None else mask[i:i + 1]
        fit = deep_image_prior(degraded[i:i + 1], m, iterations=max(DIP_ITERATIONS), seed=seed,
                               snapshots=DIP_ITERATIONS)
        for n in DIP_ITERATIONS:
            total[n] += float(psnr(clean[i:i + 1].double(), quantize(fit.snapshots[n]))[0])
    seconds = (time.perf_counter() - started) / clean.shape[0]
    return [{"params": {"iterations": n}, "psnr": round(total[n] / clean.shape[0], 4),
             "seconds_full_fit": round(seconds, 3)} for n in DIP_ITERATIONS]


def record_result(path: Path, meta: dict, method: str, setting: str, entry: dict) -> None:
    """Merge one (method, setting) result into ``path``, re-reading it first so that tune calls running at the same
    time (e.g. one per setting, one per core) keep each other's entries."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        _merge_into(path, meta, method, setting, entry)


def _merge_into(path: Path, meta: dict, method: str, setting: str, entry: dict) -> None:
    data = json.loads(path.read_text()) if path.exists() else {"params": {}, "scores": {}}
    data["meta"] = meta
    for key, value in entry.items():
        data.setdefault(key, {}).setdefault(method, {})[setting] = value
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)  # atomic: a killed tune never leaves a torn file


def tune_peers(args: argparse.Namespace) -> None:
    """The ``table1.py tune`` subcommand (see the module docstring)."""
    from benchmarks.tune_restore import validation_crops

    methods = [m for m in args.methods.split(",") if m != "input"]
    unknown = [m for m in methods if m not in PEERS]
    if unknown:
        raise SystemExit(f"unknown peers {unknown}; known: {', '.join(PEERS)}")
    skipped = [m for m in methods if m not in available_peers()]
    if skipped:
        print(f"warning: skipping {skipped}: their packages are not installed", file=sys.stderr)
    methods = [m for m in methods if m not in skipped]
    out = Path(args.out)
    clean = validation_crops(args.root, args.crops, args.size)
    meta = {"root": args.root, "crops": args.crops, "dip_crops": min(args.dip_crops, args.crops),
            "size": args.size, "degrade_seed": DEGRADE_SEED, "base_sigma": BASE_SIGMA,
            "factors": list(args.factors), "metric": "mean PSNR of 8-bit outputs"}
    for setting in args.settings.split(","):
        degraded, mask = degrade(clean, setting, seed=DEGRADE_SEED)
        degraded = quantize(degraded).float()
        for method in methods:
            # DIP is slow: it is tuned on the first --dip-crops crops only
            n = min(args.dip_crops, args.crops) if method == "dip" else args.crops
            crops = clean[:n], degraded[:n], None if mask is None else mask[:n]
            if method == "dip":
                scores = score_dip(*crops)
            else:
                scores = score_grid(method, *crops, setting, tuple(args.factors))
            best = max(scores, key=lambda s: s["psnr"])
            # "meta" describes the latest tune call only; each entry keeps the crops it was tuned on
            record_result(out, meta, method, setting,
                          {"params": best["params"], "scores": scores, "tuned_on": {"crops": n, "size": args.size}})
            key = next(iter(best["params"]))
            values = [s["params"][key] for s in scores]
            at_edge = best["params"][key] in (min(values), max(values))
            edge = f" ({key} at the grid's edge: widen the grid)" if at_edge else ""
            input_psnr = float(psnr(crops[0].double(), crops[1].double()).mean())
            print(json.dumps({"setting": setting, "method": method, "best": best["params"], "psnr": best["psnr"],
                              "input_psnr": round(input_psnr, 4)}) + edge, flush=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit("run `python -m benchmarks.table1 tune` instead")

