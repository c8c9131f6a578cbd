"""The local runner: :func:`run_batch` plans a folder, writes the manifest and restores file after file (or hands
the files to the Ray backend)."""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from flowprior import __version__
from flowprior.batch.dry_run import dry_run
from flowprior.batch.item import record, restore_item
from flowprior.batch.manifest import MANIFEST_NAME, Manifest, ManifestError
from flowprior.batch.memory import measure_tile_cost, memory_planner
from flowprior.batch.options import PROGRESS_MODES, BatchOptions, BatchSummary
from flowprior.batch.plan import plan_batch, remove_stale_temporaries
from flowprior.batch.progress import Reporter
from flowprior.batch.ray_backend import run_on_ray
from flowprior.errors import UsageError
from flowprior.output_guard import input_conflict


def _resolve_settings(restore: dict[str, Any], max_memory: int | None):
    """(recipe, prior, restore_file kwargs) shared by every file of the batch; the model is loaded once."""
    from flowprior.restoration import load_model, with_total_steps
    from flowprior.restore_file import SOLVE_OPTIONS, resolve_recipe

    kwargs = {key: restore.get(key) for key in ("chroma", "strength", "quality")}
    kwargs.update(compare=bool(restore.get("compare")), accept_truncated=bool(restore.get("accept_truncated")))
    options = {key: restore.get(key) for key in SOLVE_OPTIONS if key != "max_memory"}
    recipe, replay = resolve_recipe(restore.get("params_from"), **options, max_memory=max_memory)
    # Every file of the batch, on every backend, runs with one thread count (float reductions depend on it): the
    # one asked for, else this process's; a replay takes the sidecar's (restore_file reads it).
    kwargs["threads"] = restore.get("threads") or (None if replay else torch.get_num_threads())
    if replay:
        quality = kwargs["quality"] if kwargs["quality"] is not None else replay["quality"]
        kwargs.update(chroma=replay["chroma"], strength=replay["strength"], quality=quality)
    # posterior samples of every file (--samples N, or a replayed sidecar's), each saved with --save-samples
    kwargs.update(samples=replay["samples"] if replay else restore.get("samples"),
                  save_samples=bool(restore.get("save_samples")))
    prior = load_model(recipe.model)
    if restore.get("steps") is not None:
        recipe = with_total_steps(recipe, restore["steps"], prior.num_levels)
    return recipe, prior, kwargs


def run_batch(
    input_dir: str | Path,
    output_dir: str | Path,
    options: BatchOptions | None = None,
    restore: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> BatchSummary:
    """Restore every image of ``input_dir`` into ``output_dir`` (:mod:`flowprior.batch` has the rules).

    Args:
        input_dir, output_dir: folders; ``output_dir`` is created.
        options: walking, naming, resume and reporting options.
        restore: solve settings: ``degradation``, ``recipe``, ``settings``, ``operator_params``, ``steps``, ``seed``,
            ``init``, ``model``, ``chroma``, ``strength``, ``quality``, ``compare``, ``samples``, ``save_samples``,
            ``params_from`` (as for :func:`flowprior.restore_file.restore_file`; ``params_from`` applies one
            sidecar's settings to all).
        echo: where the dry-run table and the summary lines go.

    Returns:
        A :class:`BatchSummary`; ``exit_code`` is 3 when the batch stopped early.

    Raises:
        UsageError: bad options or folders, before anything is written.
    """
    options, restore = options or BatchOptions(), dict(restore or {})
    _check_options(options)
    started = time.perf_counter()
    items = plan_batch(
        input_dir,
        output_dir,
        recursive=options.recursive,
        suffix=options.suffix,
        fmt=options.format,
        overwrite=options.overwrite,
        **_posterior_outputs(restore),
    )
    recipe, prior, kwargs = _resolve_settings(restore, options.max_memory)
    _check_quality(items, kwargs["quality"])
    manifest_path = options.manifest or Path(output_dir) / MANIFEST_NAME
    conflict = input_conflict(manifest_path, [i.source for i in items], input_dir)
    if conflict:
        raise UsageError(f"refusing to write the manifest: {conflict}; choose another --manifest")
    todo = [i for i in items if i.action in ("restore", "redo")]
    if options.limit is not None:
        todo = todo[: options.limit]
    cost = measure_tile_cost(prior, recipe)
    planner = memory_planner(options.max_memory, cost)  # without --max-memory: half the available memory
    summary = BatchSummary(run_id=time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3))
    if options.dry_run:
        dry_run(items, todo, recipe, prior, cost, options, summary, echo, kwargs["compare"], kwargs["samples"],
                kwargs["save_samples"])
        summary.seconds = time.perf_counter() - started
        return summary

    manifest = _start_manifest(manifest_path, summary, items, todo, input_dir, output_dir, options, recipe, prior)
    if manifest is None:
        return summary
    report = Reporter(options.progress, todo, echo)
    try:
        _restore_all(items, todo, recipe, prior, kwargs, planner, options, manifest, report, summary)
    except ManifestError as error:  # the run log cannot be kept (disk full, I/O error): stop, like a fatal file
        summary.fatal = str(error)
    except KeyboardInterrupt:
        with contextlib.suppress(ManifestError):
            manifest.write("run_end", status="interrupted", **_counts(summary))
        raise
    finally:
        report.close()
    summary.seconds = time.perf_counter() - started
    _end_manifest(manifest, summary)
    return summary


def _posterior_outputs(restore: dict[str, Any]) -> dict[str, Any]:
    """``samples`` and ``save_samples`` for the plan, so that it guards their outputs too (a replay's count is its
    sidecar's)."""
    samples = restore.get("samples")
    if samples is None and restore.get("params_from") is not None:
        from flowprior.restore_file import replay_options

        samples = replay_options(restore["params_from"])["samples"]
    return {"samples": samples, "save_samples": bool(restore.get("save_samples"))}


def _check_options(options: BatchOptions) -> None:
    if options.progress not in PROGRESS_MODES:
        raise UsageError(f"--progress must be one of {', '.join(PROGRESS_MODES)}, not {options.progress!r}")
    if options.backend not in ("local", "ray"):
        raise UsageError(f"--backend must be local or ray, not {options.backend!r}")
    if options.limit is not None and options.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {options.limit}")


def _check_quality(items, quality: int | None) -> None:
    for item in items:
        fmt_ok = item.target.suffix.lower() in (".jpg", ".jpeg", ".webp") or quality is None
        if not fmt_ok:
            raise UsageError("--quality applies to lossy outputs only; add --format jpg or webp")


def _start_manifest(manifest_path: Path, summary: BatchSummary, items, todo, input_dir, output_dir,
                    options: BatchOptions, recipe, prior) -> Manifest | None:
    """Create the output folder, delete the temporaries a killed run left and log ``run_start``; None (with
    ``summary.fatal`` set) when the folder cannot be written."""
    target_root = Path(output_dir)
    try:
        target_root.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(items)
        manifest = Manifest(manifest_path, summary.run_id)
        manifest.write(
            "run_start",
            flowprior_version=__version__,
            input_dir=str(input_dir),
            output_dir=str(output_dir),
            files=len(items),
            to_restore=len(todo),
            argv=sys.argv,
            options={k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
            recipe=_recipe_dict(recipe),
            model_sha256=getattr(prior, "sha256", None),
        )
    except OSError as error:
        summary.fatal = f"cannot write to {target_root}: {error.strerror or error}"
        return None
    return manifest


def _end_manifest(manifest: Manifest, summary: BatchSummary) -> None:
    """Log ``run_end``; a manifest that cannot be written any more makes the run fatal."""
    try:
        manifest.write(
            "run_end",
            status="fatal" if summary.fatal else "finished",
            exit_code=summary.exit_code,
            seconds=round(summary.seconds, 3),
            fatal=summary.fatal,
            **_counts(summary),
        )
    except ManifestError as error:
        summary.fatal = summary.fatal or str(error)


def _restore_all(items, todo, recipe, prior, kwargs, planner, options, manifest, report, summary) -> None:
    """Record the skipped and unplannable files, then restore the work list (here or on Ray) until a fatal error."""
    for item in items:
        if item.action == "skip":
            summary.skipped.append(str(item.source))
            manifest.write("file", input=str(item.source), output=str(item.target), status="skipped",
                           reason="finished in an earlier run")
        elif item.action == "error":
            summary.failed.append((str(item.source), item.note))
            manifest.write("file", input=str(item.source), output=str(item.target), status="failed", error=item.note)
    if options.backend == "ray":
        run_on_ray(todo, recipe, prior, planner, kwargs, options, manifest, report, summary)
        return
    for item in todo:
        report.start(item)
        outcome = restore_item(item, recipe, prior, kwargs, planner, options.progress == "bar")
        record(item, outcome, manifest, report, summary)
        if summary.fatal:
            break


def _counts(summary: BatchSummary) -> dict[str, int]:
    return {"restored": len(summary.restored), "skipped": len(summary.skipped), "failed": len(summary.failed)}


def _recipe_dict(recipe) -> dict[str, Any]:
    from flowprior.recipe import to_dict

    return to_dict(recipe)
