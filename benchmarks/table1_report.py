"""Table 1 output: the Markdown table (mean per setting x method) and the side-by-side figure, from the JSON lines.

Kept apart from ``table1.py`` so a table or figure can be rebuilt from a finished (or half-finished) run without
importing any method.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from flowprior.io import to_uint

#: Figure cases, ``image:setting``; the image is looked up in the 256 crops first, then the full images.
DEFAULT_PAIRS = "monarch:noise25,kodim07:jpeg10,tulips:multi"
NOT_PEERS = ("input", "flowprior", "flowprior-fast")
ZOOM_REGION = 128  # the figure shows the central 128x128 pixels of an image, enlarged 2x
ZOOM = 2


def read_rows(path: Path) -> list[dict]:
    """The JSON lines of a run; a torn last line (a run killed mid-write) is ignored."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _ordered(values, order) -> list:
    seen = list(dict.fromkeys(values))
    return sorted(seen, key=lambda v: (order.index(v) if v in order else len(order), v))


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def means(rows: list[dict]) -> dict[tuple[str, str, str], dict]:
    """{(image set, setting, method): {"psnr", "ssim", "ms_ssim", "seconds", "n"}}, means over images."""
    groups = defaultdict(list)
    for row in rows:
        groups[(row["images"], row["setting"], row["method"])].append(row)
    return {key: {**{m: _mean([r.get(m) for r in group]) for m in ("psnr", "ssim", "ms_ssim", "seconds")},
                  "n": len(group)} for key, group in groups.items()}


def markdown_table(rows: list[dict], method_order: tuple[str, ...] = ()) -> str:
    """One Markdown table per image set: rows = methods, columns = settings, cells ``PSNR / SSIM / MS-SSIM``.

    The best PSNR of each column is bold; a cell averaged over fewer images than its column has is marked ``†``.
    Methods appear in ``method_order``, then any others by name.
    """
    from benchmarks.settings import SETTINGS

    if not rows:
        return "(no rows)"
    stats = means(rows)
    blocks = []
    for image_set in _ordered([r["images"] for r in rows], ["256crops", "full"]):
        part = [r for r in rows if r["images"] == image_set]
        settings = _ordered([r["setting"] for r in part], list(SETTINGS))
        methods = _ordered([r["method"] for r in part], list(method_order))
        cells = {s: [stats[(image_set, s, m)] for m in methods if (image_set, s, m) in stats] for s in settings}
        size = {s: max(st["n"] for st in cells[s]) for s in settings}
        best = {s: max(st["psnr"] for st in cells[s]) for s in settings}
        lines = [f"**{image_set}** — PSNR (dB) / SSIM / MS-SSIM, mean over images (n per column)", "",
                 "| method | " + " | ".join(f"{s} (n={size[s]})" for s in settings) + " | s/image |",
                 "|---|" + "---|" * (len(settings) + 1)]
        for method in methods:
            cells, seconds = [], []
            for s in settings:
                st = stats.get((image_set, s, method))
                if st is None:
                    cells.append("–")
                    continue
                value = f"{st['psnr']:.2f}"
                value = f"**{value}**" if st["psnr"] == best[s] else value
                ms = "–" if st["ms_ssim"] is None else f"{st['ms_ssim']:.3f}"
                cells.append(f"{value} / {st['ssim']:.3f} / {ms}" + ("†" if st["n"] < size[s] else ""))
                seconds.append(st["seconds"])
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {_mean(seconds):.2f} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def quantize(x: Tensor) -> Tensor:
    """What an 8-bit file would hold, back in [0, 1] floats (float64); every measured image goes through it."""
    return (x.detach().to(torch.float64).clamp(0, 1) * 255.0).round() / 255.0


def save_png(image: Tensor, path: Path) -> None:
    """Write a (1, C, H, W) [0, 1] image as an 8-bit PNG (what the metrics measured, see :func:`quantize`)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    array = to_uint(image[0]).transpose(1, 2, 0)
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(path)


def best_peer(rows: list[dict], image_set: str, setting: str) -> str | None:
    """The peer with the highest mean PSNR on (image set, setting)."""
    stats = means([r for r in rows if r["method"] not in NOT_PEERS])
    scored = [(st["psnr"], m) for (i, s, m), st in stats.items() if i == image_set and s == setting]
    return max(scored)[1] if scored else None


def _tile(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
    w, h = im.size
    side = min(ZOOM_REGION, w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side)).resize((side * ZOOM, side * ZOOM), Image.NEAREST)


def make_figure(rows: list[dict], image_dir: Path, pairs: str, out: Path) -> Path | None:
    """Rows of clean | degraded | flowprior | best peer (central crops, enlarged) for the cases in ``pairs``.

    The best peer is the one with the highest mean PSNR over the image set for that setting (not per image).

    Each tile is labelled with its method and PSNR on the whole image. Cases whose images are missing are
    skipped; returns None when none is complete.
    """
    from PIL import Image, ImageDraw, ImageFont

    psnr = {(r["images"], r["image"], r["setting"], r["method"]): r["psnr"] for r in rows}
    lines = []
    for pair in pairs.split(","):
        name, setting = pair.split(":")
        for image_set in _ordered([r["images"] for r in rows], ["256crops", "full"]):
            peer = best_peer(rows, image_set, setting)
            case = image_dir / image_set / name / setting
            columns = [("_clean", f"{name} {setting}"), ("_degraded", "degraded"), ("flowprior", "flowprior")]
            if (case / "flowprior-fast.png").is_file():
                columns.append(("flowprior-fast", "fast"))
            columns.append((peer, peer))
            if peer and all((case / f"{c}.png").is_file() for c, _ in columns):
                # The degraded tile shows the raw input (holes black); its PSNR is the "input" row's.
                lines.append([(_tile(case / f"{c}.png"), label,
                               None if c == "_clean" else psnr.get((image_set, name, setting,
                                                                    "input" if c == "_degraded" else c)))
                              for c, label in columns])
                break
    if not lines:
        return None
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    side, label_h, gap = lines[0][0][0].size[0], 20, 4
    width = max(len(line) for line in lines)
    sheet = Image.new("RGB", (width * side + (width + 1) * gap, len(lines) * (side + label_h + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for r, line in enumerate(lines):
        y = gap + r * (side + label_h + gap)
        for c, (tile, label, value) in enumerate(line):
            x = gap + c * (side + gap)
            text = label if value is None else f"{label}  {value:.2f} dB"
            draw.text((x + 2, y + 2), text, fill="black", font=font)
            sheet.paste(tile, (x, y + label_h))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
