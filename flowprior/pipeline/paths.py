"""Where a restore writes besides its image: the sidecar, the review image, the posterior's std map and samples, a
detected mask, the pending marker."""

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


def std_path(target: str | Path) -> Path:
    """``out/a.png`` -> ``out/a.std.png`` (``--samples``: the per-pixel posterior standard deviation, 16-bit)."""
    target = Path(target)
    return target.with_name(target.stem + ".std.png")


def sample_path(target: str | Path, k: int, samples: int) -> Path:
    """``out/a.png`` -> ``out/a.sample-03.png`` (``--save-samples``: posterior sample ``k`` of ``samples``); two
    digits at least, more when N needs them, so the names sort in sample order."""
    target = Path(target)
    return target.with_name(f"{target.stem}.sample-{k:0{max(2, len(str(samples - 1)))}d}.png")


def posterior_paths(target: str | Path, samples: int | None, save_samples: bool = False) -> list[Path]:
    """What ``--samples`` (and ``--save-samples``) write beside ``target``: none without samples."""
    if not samples:
        return []
    return [std_path(target)] + [sample_path(target, k, samples) for k in range(samples if save_samples else 0)]


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
