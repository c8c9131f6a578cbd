"""The work list of a folder batch: which files are inputs, where each output goes and what happens to it.

Nothing here writes an image; :func:`remove_stale_temporaries` only deletes what a killed run left behind.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from flowprior.errors import UsageError
from flowprior.io import Header, read_header
from flowprior.output_guard import inside, resolved
from flowprior.pipeline.paths import posterior_paths
from flowprior.restore_file import compare_path, pending_path, sidecar_path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"})
FORMATS = {"auto": None, "png": ".png", "tif": ".tif", "tiff": ".tif", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp"}


@dataclass
class WorkItem:
    """One input and what the batch will do with it: ``restore``, ``redo``, ``skip`` (finished) or ``error``."""

    source: Path
    relative: Path
    target: Path
    action: str
    mask: Path | None = None
    size: tuple[int, int] | None = None  # (H, W), upright; None when the header could not be read
    header: Header | None = None  # channels and bit depth too (for the memory estimate)
    note: str = ""
    extra_outputs: list[Path] = field(default_factory=list)  # --samples: STEM.std.png (+ STEM.sample-NN.png)


#: what a restore writes beside its output (masks, --compare panels, --samples std maps and samples): never an input,
#: so a batch pointed at an earlier output folder restores only the photos
_SIDE_OUTPUT = re.compile(r"\.(mask|compare|std|sample-\d+)$")


def _is_input(path: Path) -> bool:
    name = path.name
    return (
        not name.startswith(".")
        and path.suffix.lower() in IMAGE_SUFFIXES
        and not _SIDE_OUTPUT.search(path.stem.lower())
    )


def _list_inputs(root: Path, recursive: bool) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The input files, sorted, and the folders that could not be listed (with the reason)."""
    found, unlisted = [], []

    def note(error: OSError) -> None:
        if Path(error.filename) != root:
            unlisted.append((Path(error.filename), error.strerror or str(error)))

    for folder, dirs, files in os.walk(root, onerror=note, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found += [Path(folder) / name for name in files if _is_input(Path(name))]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix()), unlisted


def _lossless_webp(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8L"


def output_suffix(source: Path, fmt: str = "auto") -> str:
    """The output file's suffix: the input's when lossless (PNG, TIFF, lossless WebP), else ``.png``."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if FORMATS[fmt]:
        return FORMATS[fmt]
    suffix = source.suffix.lower()
    if suffix in (".png", ".tif", ".tiff") or (suffix == ".webp" and _lossless_webp(source)):
        return source.suffix
    return ".png"


def plan_batch(
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    recursive: bool = False,
    suffix: str = "",
    fmt: str = "auto",
    overwrite: bool = False,
    samples: int | None = None,
    save_samples: bool = False,
) -> list[WorkItem]:
    """The work list, in order, with what will happen to each input (nothing is written). ``samples``,
    ``save_samples``: the posterior outputs each file writes too, guarded like the image.

    Raises:
        UsageError: a missing input folder, or an output folder that is the input folder or inside it.
    """
    source_root, target_root = Path(input_dir), Path(output_dir)
    if not source_root.is_dir():
        raise UsageError(f"input folder not found: {source_root}")
    real_source, real_target = source_root.resolve(), target_root.resolve()
    if inside(real_target, real_source):
        raise UsageError(
            f"the output folder {target_root} is inside the input folder {source_root}; "
            "choose a folder outside it (inputs are never written to)"
        )
    if "/" in suffix or "\\" in suffix:
        raise UsageError(f"--suffix may not contain a path separator: {suffix!r}")
    sources, unlisted = _list_inputs(source_root, recursive)
    real_inputs = {real for real in map(resolved, sources) if real is not None}
    items, claimed = [], {}
    for source in sources:
        item = _plan_item(source, source_root, target_root, suffix, fmt)
        item.extra_outputs = posterior_paths(item.target, samples, save_samples)
        item.action, item.note = _action(item, real_source, real_inputs, overwrite)
        if item.action in ("restore", "redo"):
            item.header = read_header(source)
            item.size = None if item.header is None else (item.header.height, item.header.width)
        claimed.setdefault(resolved(item.target) or item.target, []).append(item)
        items.append(item)
    for shared in (group for group in claimed.values() if len(group) > 1):
        names = ", ".join(str(i.relative) for i in shared)
        for item in shared:
            item.action, item.note = (
                "error",
                f"{names} would all be written to {item.target}; rename or use --format",
            )
    for folder, reason in unlisted:  # an unreadable folder fails as one entry; the others go on
        relative = folder.relative_to(source_root)
        items.append(WorkItem(folder, relative, target_root / relative, "error",
                              note=f"cannot list the folder {folder}: {reason}"))
    return items


def _plan_item(source: Path, source_root: Path, target_root: Path, suffix: str, fmt: str) -> WorkItem:
    relative = source.relative_to(source_root)
    target = target_root / relative.parent / (relative.stem + suffix + output_suffix(source, fmt))
    mask = source.with_name(source.stem + ".mask.png")
    return WorkItem(source, relative, target, "restore", mask if mask.is_file() else None)


def _action(item: WorkItem, real_source: Path, real_inputs: set[Path], overwrite: bool) -> tuple[str, str]:
    """(action, note) for one input: a bad entry (a symlink loop, a dangling link, not a regular file), an output
    that would touch the input tree, a finished output, an unfinished one of ours, or a foreign file in the way."""
    source, target = item.source, item.target
    try:
        if not stat.S_ISREG(os.stat(source).st_mode):
            return "error", f"{source} is not a regular file"
    except OSError as error:
        return "error", f"cannot read {source}: {error.strerror or error}"
    if resolved(source) is None:
        return "error", f"cannot resolve {source} (a symlink loop?)"
    for written in (target, sidecar_path(target), compare_path(target), *item.extra_outputs):
        real = resolved(written)
        if real is None or inside(real, real_source) or real in real_inputs:
            return "error", f"its output {written} would be inside the input tree"
    if overwrite or not os.path.lexists(target):
        return "restore", ""
    if sidecar_path(target).exists():
        return "skip", ""
    if pending_path(target).exists():
        return "redo", "an earlier run left the image without its sidecar"
    return "error", (f"{target} exists and is not a flowprior output (no sidecar); move it away or pass "
                     "--overwrite to replace it")


def remove_stale_temporaries(items: list[WorkItem]) -> int:
    """Delete the temporary files (``.NAME.xxxxxxxx.tmp``) that a killed run left for planned outputs; returns how
    many. Each output folder is listed once, and only names of this batch's outputs are touched."""
    finals: dict[Path, set[str]] = {}
    for item in items:
        for final in (item.target, sidecar_path(item.target), compare_path(item.target), *item.extra_outputs):
            finals.setdefault(final.parent, set()).add(final.name)
    pattern, removed = re.compile(r"\.(.+)\.[0-9a-f]{8}\.tmp"), 0
    for folder, names in finals.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            match = pattern.fullmatch(entry.name)
            if match and match.group(1) in names and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
    return removed
