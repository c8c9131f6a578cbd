"""Where a restore writes besides its image: the sidecar, the review image, a detected mask, the pending marker."""

from __future__ import annotations

from pathlib import Path


def sidecar_path(target: str | Path) -> Path:
    """``out/a.png`` -> ``out/a.png.json``."""
    target = Path(target)
    return target.with_name(target.name + ".json")


def compare_path(target: str | Path) -> Path:
    """``out/a.png`` -> ``out/a.compare.png`` (the side-by-side review image)."""
    target = Path(target)
    return target.with_name(target.stem + ".compare.png")


def detected_mask_path(target: str | Path) -> Path:
    """Where ``--degradation auto`` writes the mask it detected (and the sidecar's replay reads it): STEM.mask.png."""
    target = Path(target)
    return target.with_name(f"{target.stem}.mask.png")


def pending_path(target: str | Path) -> Path:
    """``out/.a.png.flowprior-pending``: exists from just before ``out/a.png`` is written until its sidecar is. An
    image without a sidecar is this tool's unfinished output (a batch redoes it) only when this marker is there."""
    target = Path(target)
    return target.with_name(f".{target.name}.flowprior-pending")


def mark_pending(target: Path) -> None:
    with open(pending_path(target), "wb") as handle:
        handle.write(b"flowprior: writing this image; its sidecar is written last\n")
