"""Embed a trained warm start: store its weights in float16, record the sha256, write its model card.

Usage: python scripts/embed_warmstart.py runs/warmstart-irflow/best.pt --log runs/warmstart-irflow/log.jsonl

Writes flowprior/weights/warmstart-<method>.pt (config + float16 state dict + meta, no optimizer state: half the
size of the float32 weights; loading casts back to float32), adds or updates ``warmstart-<method>`` in
flowprior/weights/__init__.py (``--init <method>`` then needs no checkpoint) and writes
flowprior/weights/warmstart-<method>.md from the checkpoint's own meta, the training log and the data manifest.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from embed_prior import WEIGHTS, data_summary

from flowprior.prior.checkpoint import read_checkpoint, save_checkpoint
from flowprior.warmstart.learned import build_warmstart

ROOT = Path(__file__).resolve().parents[1]


def register(name: str, filename: str, sha256: str) -> None:
    """Add or update ``name`` in the EMBEDDED table of flowprior/weights/__init__.py."""
    init = WEIGHTS / "__init__.py"
    text = init.read_text()
    entry = f'    "{name}": ("{filename}", "{sha256}"),\n'
    pattern = rf'    "{re.escape(name)}": \([^)]*\),\n'
    if re.search(pattern, text):
        text = re.sub(pattern, entry, text)
    else:
        head, tail = text.split("EMBEDDED = {\n", 1)
        body, rest = tail.split("}\n", 1)
        text = f"{head}EMBEDDED = {{\n{body}{entry}}}\n{rest}"
    init.write_text(text)


def degradation_summary(data: dict) -> str:
    """The training degradations: the mixture's members with weights, or the single chain."""
    if not data.get("mixture"):
        return f"`{data.get('degradation')}` with `{json.dumps(data.get('params'))}`"
    members = "; ".join(f"{m['name']} `{m['degradation']}` `{json.dumps(m.get('params', {}))}` "
                        f"(weight {m.get('weight', 1)})" for m in data["mixture"])
    return f"mixture: {members}; noise/JPEG withheld with probability {data.get('unknown_probability')}"


def per_setting_table(train: dict, meta: dict) -> str:
    """Held-out PSNR per training setting against its degraded input (when the run logged them)."""
    scores, inputs = train.get("val_psnr_by_setting"), meta.get("val_input_psnr_by_setting")
    if not scores or not inputs:
        return ""
    lines = ["| held-out setting | input dB | restored dB |", "|---|---|---|"]
    lines += [f"| {k} | {inputs.get(k, float('nan')):.2f} | {v:.2f} |" for k, v in scores.items()]
    return "\n".join(lines)


def started_from(init: dict | None) -> str:
    """The card row for a run that began from another trained network (``optim.init_from``), or nothing."""
    if not init:
        return ""
    source = init.get("train_state") or {}
    return (f"| started from | `{init['path']}` (sha256 `{init['sha256'][:12]}…`, a trained {init.get('method')} "
            f"network: {source.get('step')} steps, {source.get('seconds', 0) / 3600:.2f} h; copied into "
            f"{'`' + init['prefix'] + '`' if init.get('prefix') else 'the whole network'}, new channels cut; flowprior/warmstart/transplant.py). "
            f"The steps, patches and hours above are this run's only |\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--log", help="the run's log.jsonl (validation curve)")
    parser.add_argument("--note", default="", help="a paragraph for the card")
    parser.add_argument("--recipe", default=None, help="the recipe file the run was started from, for the card")
    parser.add_argument("--hardware", default="2 threads", help="how the cores were used, for the card")
    parser.add_argument("--specialist", default=None, metavar="KIND",
                        help="embed as warmstart-<method>-<KIND>, the specialist the general model hands this kind of "
                             "damage to (flowprior.warmstart.learned.damage_kind, e.g. noise)")
    args = parser.parse_args()
    payload = read_checkpoint(args.checkpoint)
    config, meta = payload["config"], payload["meta"]
    method = config["method"]
    name = f"warmstart-{method}" + (f"-{args.specialist}" if args.specialist else "")
    filename = f"{name}.pt"
    role = (f"run by `--init {method}` for `{args.specialist}` damage alone" if args.specialist
            else f"loaded by `--init {method}`")
    state = {k: v.half().contiguous() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    build_warmstart(config).load_state_dict(state)  # refuse to embed weights that do not fit their config
    target = WEIGHTS / filename
    sha256 = save_checkpoint(target, config, state, meta)
    register(name, filename, sha256)

    train = meta.get("train_state", {})
    recipe = meta.get("recipe", {})
    rows = []
    if args.log and Path(args.log).is_file():
        rows = [json.loads(line) for line in Path(args.log).read_text().splitlines() if '"val_psnr"' in line]
    curve = ", ".join(f"{r['step']}: {r['val_psnr']:.2f}" for r in rows if not r.get("final")) or "(log not given)"
    optim, data = recipe.get("optim", {}), recipe.get("data", {})
    patches = (train.get("step") or 0) * (optim.get("batch_size") or 0)
    card = f"""# Model card: `{filename}` (embedded as `{name}`, {role})

A learned warm start ({method}) for `flowprior restore`: a few passes of a time-conditioned U-Net turn the degraded
image (missing pixels filled) into a first estimate that the latent MAP refines.
Generated by `python scripts/embed_warmstart.py {args.checkpoint}` — do not edit by hand.

| field | value |
|---|---|
| sha256 | `{sha256}` |
| file size | {target.stat().st_size / 1e6:.2f} MB (weights stored in float16, run in float32) |
| architecture | `{json.dumps(config)}` |
| parameters | {sum(v.numel() for v in state.values() if v.is_floating_point()):,} |
| optimizer steps | {train.get("step")} (batch {optim.get("batch_size")} of {data.get("patch_size")}² patches, lr {optim.get("lr")}) |
| patches seen | {patches:,} |
| non-finite batches skipped | {train.get("skipped", 0)} |
| wall time | {train.get("seconds", 0) / 3600:.2f} h on 2 CPU cores ({args.hardware}) |
| held-out PSNR | {train.get("val_psnr", train.get("best_val_psnr"))} dB at step {train.get("step")} (degraded input {meta.get("val_input_psnr")} dB; {optim.get("val_patches")} validation pairs per setting) |
| training degradations | {degradation_summary(data)} |
{started_from(train.get("init_from"))}
{per_setting_table(train, meta)}

"""
    card += f"""{args.note}

## Validation curve (step: held-out PSNR, dB)

{curve}

## Recipe

`{args.recipe or f"recipes/train/warmstart-{method}.yaml"}`, resolved:

```json
{json.dumps(recipe, indent=2)}
```

## Data

Clean patches from the training pool of `../shared/DATA.md` (`python scripts/fetch_training_data.py`), the same
photos and validation split as the default prior (MODEL_CARD.md); the degraded side of each pair is synthesized
on the fly with the operators of `degradations/`. No test image of `docs/benchmarks.md` was used.

{data_summary(ROOT / recipe.get("data", {}).get("root", "data/train"))}
"""
    (WEIGHTS / f"{name}.md").write_text(card)
    print(json.dumps({"file": str(target), "sha256": sha256, "bytes": target.stat().st_size}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
