"""Embed a trained prior as the package default: copy its weights, record the sha256, write the model card.

Usage: python scripts/embed_prior.py runs/cpu-default/prior.pt [--name default] [--log runs/cpu-default/log.jsonl]

Writes flowprior/weights/<file>.pt (config + float32 state dict + meta, no optimizer state), updates the sha256
in flowprior/weights/__init__.py and regenerates flowprior/weights/MODEL_CARD.md from the checkpoint's own meta,
the training log and the data manifest.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from flowprior.prior.checkpoint import read_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "flowprior" / "weights"


def data_summary(root: Path) -> str:
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return "(data manifest not found)"
    files = list(json.loads(manifest.read_text())["files"].values())
    rows = Counter()
    pixels = Counter()
    versions = {}
    for entry in files:
        key = entry.get("package", "?")
        rows[key] += 1
        pixels[key] += entry.get("width", 0) * entry.get("height", 0)
        versions[key] = entry.get("version", "?")
    lines = ["| Debian package | version | photos | megapixels |", "|---|---|---|---|"]
    lines += [f"| {k} | {versions[k]} | {rows[k]} | {pixels[k] / 1e6:.1f} |" for k in sorted(rows)]
    return "\n".join(lines)


def training_phases(train: dict, optim: dict | None) -> list[dict]:
    """The runs behind a checkpoint, oldest first: each continued from the previous one's weights
    (``optim.init_from``) with a fresh optimizer and its own step counter. Each: step, seconds, sha256 of the
    checkpoint it ended in (None for the last: that is the file being embedded)."""
    chain = [{**train, "sha256": None, "optim": optim}]
    while chain[-1].get("init_from"):
        source = chain[-1]["init_from"]
        chain.append({**(source.get("train_state") or {}), "sha256": source.get("sha256"), "optim": source.get("optim")})
    return chain[::-1]


def validation_curve(rows: list[dict]) -> str:
    return ", ".join(f"{r['step']}: {r['val_bpd']:.3f}" for r in rows if "step" in r)


def card_curve(sha256: str | None) -> str:
    """The curve the current model card recorded for the checkpoint ``sha256`` (its log may be gone): either the
    card of that checkpoint itself, or a phase line of a later card that names it."""
    card = WEIGHTS / "MODEL_CARD.md"
    text = card.read_text() if card.is_file() else ""
    if not sha256:
        return "(log not kept)"
    marker = "Held-out bits/dim by step: "
    for line in text.splitlines():
        if f"`{sha256[:12]}`" in line and marker in line:
            return line.split(marker, 1)[1]
    if sha256 in text and "## Validation curve (step: held-out bits/dim)" in text:
        return text.split("## Validation curve (step: held-out bits/dim)")[1].strip().splitlines()[0]
    return "(log not kept)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--name", default="default")
    parser.add_argument("--file", default="default-prior.pt")
    parser.add_argument("--note", default="", help="a paragraph for the card's training section")
    parser.add_argument("--log", action="append", default=[],
                        help="log.jsonl of a training phase; repeat, oldest first, for runs continued by init_from")
    args = parser.parse_args()
    payload = read_checkpoint(args.checkpoint)
    meta = payload["meta"]
    state = {k: v.float().contiguous() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    target = WEIGHTS / args.file
    sha256 = save_checkpoint(target, payload["config"], state, meta)
    init = WEIGHTS / "__init__.py"
    text = init.read_text()
    text = re.sub(rf'"{args.name}": \("{re.escape(args.file)}", [^)]*\)', f'"{args.name}": ("{args.file}", "{sha256}")', text)
    init.write_text(text)

    train = meta.get("train_state", {})
    recipe = meta.get("recipe", {})
    phases = training_phases(train, recipe.get("optim"))
    logs = [None] * (len(phases) - len(args.log)) + args.log
    history = []
    for number, (phase, log) in enumerate(zip(phases, logs), 1):
        rows = []
        if log and Path(log).is_file():
            rows = [json.loads(line) for line in Path(log).read_text().splitlines() if '"val_bpd"' in line]
        curve = validation_curve(rows) if rows else card_curve(phase["sha256"])
        ended = f", ended in `{phase['sha256'][:12]}`" if phase["sha256"] else ""
        optim = phase.get("optim") or {}
        lr = f", lr {optim['lr']} {optim.get('lr_schedule', 'constant')}" if optim else ""
        history.append(f"{number}. {phase.get('step', 0)} steps, {phase.get('seconds', 0) / 60:.1f} min{lr}{ended}. "
                       f"Held-out bits/dim by step: {curve}")
    total_steps = sum(p.get("step", 0) for p in phases)
    total_minutes = sum(p.get("seconds", 0) for p in phases) / 60
    data_root = ROOT / recipe.get("data", {}).get("root", "data/train")
    card = f"""# Model card: `{args.file}` (embedded as `{args.name}`)

A multi-scale Glow prior over 64×64 RGB patches of natural photographs, the default prior of `flowprior restore`.
Generated by `python scripts/embed_prior.py {args.checkpoint}` — do not edit by hand.

| field | value |
|---|---|
| sha256 | `{sha256}` |
| file size | {target.stat().st_size / 1e6:.2f} MB |
| architecture | `{json.dumps(payload["config"])}` |
| parameters | {sum(v.numel() for v in state.values() if v.is_floating_point()):,} |
| optimizer steps | {total_steps} (batch {recipe.get("optim", {}).get("batch_size")}) in {len(phases)} phase(s), see below |
| non-finite batches skipped | {sum(p.get("skipped", 0) for p in phases)} |
| wall time | {total_minutes:.1f} min on 2 CPU cores (shared with other jobs part of the time) |
| held-out bits/dim | {train.get("best_val_bpd") or train.get("val_bpd") or "?"} (128 patches of the validation photos, 8-bit dequantized) |

## Recipe

`recipes/train/cpu-default.yaml`, resolved:

```json
{json.dumps(recipe, indent=2)}
```

## Training phases

Each phase started from the previous one's weights with a fresh Adam optimizer (`optim.init_from`); the recipe
below is the last phase's; earlier phases used the same model, data and losses. {args.note}

{chr(10).join(history)}

## Data

The training pool of `../shared/DATA.md`, fetched by `python scripts/fetch_training_data.py` (pinned package
versions; per-file sha256 and licence in `data/train/manifest.json`). About 5 % of the photos, chosen by a hash of
their path (`flowprior.data.split_pool`, seed 0), are held out for validation and recipe tuning and were never
trained on. JPEG/WebP sources were box-downscaled ×0.5 before cutting patches; flat patches were down-weighted.

{data_summary(data_root)}

Licences of the photos are mixed (public domain, CC0, CC-BY, CC-BY-SA, BSD-2); the weights are a statistical
summary of them and ship under the project's licence. No test image of `docs/benchmarks.md` was used in training
or tuning.
"""
    (WEIGHTS / "MODEL_CARD.md").write_text(card)
    print(json.dumps({"file": str(target), "sha256": sha256}))


if __name__ == "__main__":
    main()
