"""``flowprior inspect``: one image file's estimates as a JSON-ready dict, its text rendering, the mask
file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from flowprior.estimate.report import estimate_degradation
from flowprior.io import read_image


def inspect_file(path: str | Path, save_mask: str | None = None) -> dict:
    """Estimates for one file (see :func:`estimate_degradation`); ``save_mask``: a folder, "" = beside it.

    Raises:
        ImageReadError: when the file is not a readable image.
    """
    image = read_image(path)
    est = estimate_degradation(image.pixels, path=path)
    found = {
        "image": str(path),
        "size": list(image.pixels.shape[-2:]),
        "bit_depth": image.bit_depth,
        "spec": est.spec,
        "params": est.params,
        "confidence": est.confidence,
        **est.report,
    }
    if save_mask is not None:
        folder = Path(path).parent if save_mask == "" else Path(save_mask)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{Path(path).stem}.estimated-mask.png"
        observed = np.ones(image.pixels.shape[-2:]) if est.mask is None else est.mask[0, 0].numpy()
        PILImage.fromarray((observed * 255).astype(np.uint8)).save(target)
        found["mask_file"] = str(target)
        if est.mask is not None:  # pasted on a command line, the mask must come from the file
            found["params"] = {**est.params, "mask.kind": "file", "mask.path": str(target)}
    return found


def render_text(found: dict) -> str:
    """The human-readable block ``flowprior inspect`` prints for one image."""
    noise, jpeg, defects = found["noise"], found["jpeg"], found["defects"]
    sigma = ", ".join(f"{s:.2f}" for s in noise["sigma"])
    lines = [
        f"{found['image']} ({found['size'][1]}x{found['size'][0]}, {found['bit_depth']}-bit)",
        f"  noise sigma   {sigma} (0-255; confidence {noise['confidence']:.2f}, {noise['method']})",
    ]
    if not jpeg["detected"]:
        lines.append(f"  JPEG          not detected (lattice score {jpeg.get('score', 0):.2f})")
    elif jpeg["source"] == "file":
        kind = "exact libjpeg tables" if jpeg["exact_ijg"] else f"nearest, distance {jpeg['distance']:.3f}"
        lines.append(f"  JPEG          quality {jpeg['quality']} ({kind}), subsampling {jpeg['subsampling']}")
        lines.append(f"  luma table    {_table_row(jpeg['luma_table'])}")
        if jpeg["chroma_table"] is not None:
            lines.append(f"  chroma table  {_table_row(jpeg['chroma_table'])}")
    else:
        lines.append(
            f"  JPEG          once compressed: quality ~{jpeg['quality']} from the pixels "
            f"(grid offset {tuple(jpeg['grid_offset'])}, confidence {jpeg['confidence']:.2f})"
        )
    lines.append(
        f"  defects       {defects['coverage']:.2%} of the pixels in {defects['regions']} regions "
        f"(confidence {defects['confidence']:.2f})"
    )
    for note in noise["notes"] + jpeg.get("notes", []) + defects["notes"]:
        lines.append(f"  note: {note}")
    params = " ".join(f"--set {k}={v}" for k, v in found["params"].items())
    lines.append(f"  operator      --degradation {found['spec']} {params}".rstrip())
    if "mask_file" in found:
        lines.append(f"  mask written  {found['mask_file']}")
    return "\n".join(lines)


def _table_row(table: list) -> str:
    """First row of an 8x8 table and its mean (the whole table is in the JSON)."""
    return " ".join(str(v) for v in table[0]) + f" ... (mean {np.mean(table):.1f})"
