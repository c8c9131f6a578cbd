"""``--dry-run``: the work list with estimated seconds and peak memory per file; nothing is written."""

from __future__ import annotations

import json

from flowprior.batch.memory import (
    current_rss,
    default_budget,
    format_size,
    image_buffers,
    plan_memory,
    tile_count,
)
from flowprior.errors import UsageError


def _steps(recipe, prior) -> int:
    return sum(stage.steps for stage in recipe.stages(prior.num_levels))


def dry_run(items, todo, recipe, prior, cost, options, summary, echo, compare: bool = False,
            samples: int | None = None, save_samples: bool = False) -> None:
    """Fill ``summary.planned`` and print the work list with estimated seconds and peak memory per file.

    The totals (files, seconds, peak) count only the files that would be restored: not the finished, the failing
    (unreadable header, over the memory bound: action ``fail``) or those beyond ``--limit``."""
    baseline, steps, chosen = current_rss(), _steps(recipe, prior), {id(i) for i in todo}
    budget = options.max_memory if options.max_memory is not None else default_budget()
    total_seconds, peak, count = 0.0, baseline, 0
    for item in items:
        row = {"input": str(item.relative), "output": str(item.target), "action": item.action, "note": item.note}
        if item.action in ("restore", "redo") and id(item) not in chosen:
            row["action"] = "beyond --limit"
        elif id(item) in chosen and item.size is None:
            row.update(action="fail", note="cannot read the image's header")
        elif id(item) in chosen:
            _plan_row(row, item, recipe, prior, cost, budget, baseline, steps, compare, samples, save_samples)
            if row["action"] != "fail":
                total_seconds, peak, count = total_seconds + row["seconds"], max(peak, row["peak_bytes"]), count + 1
        summary.planned.append(row)
    if options.progress == "json":
        for row in summary.planned:
            echo(json.dumps(row))
        echo(
            json.dumps(
                {
                    "to_restore": count,
                    "total_seconds": round(total_seconds, 1),
                    "peak_bytes": peak,
                    "steps": steps,
                    "seconds_per_tile_step": cost.seconds_per_tile_step,
                    "bytes_per_tile": cost.bytes_per_tile,
                }
            )
        )
        return
    for row in summary.planned:
        extra = ""
        if "peak_bytes" in row:
            extra = (
                f"  {row['size'][0]}x{row['size'][1]}  {row['tiles']} tiles  ~{row['seconds']:.0f} s"
                f"  ~{format_size(row['peak_bytes'])}"
            )
        echo(
            f"{row['action']:>14}  {row['input']} -> {row['output']}{extra}{'  ' + row['note'] if row['note'] else ''}"
        )
    echo(
        f"{count} to restore, ~{total_seconds / 60:.1f} min, peak ~{format_size(peak)} "
        f"({steps} steps; measured {cost.seconds_per_tile_step * 1e3:.1f} ms and "
        f"{format_size(cost.bytes_per_tile)} per tile-step)"
    )


def _plan_row(row: dict, item, recipe, prior, cost, budget: int, baseline: int, steps: int, compare: bool,
              samples: int | None = None, save_samples: bool = False) -> None:
    """Size, tiles, seconds and the memory plan of one file that would be restored (``fail`` when it cannot fit);
    with posterior samples, their chain steps (one tile-step each) and buffers are counted too."""
    from flowprior.pipeline.streaming import streams

    (h, w), header = item.size, item.header
    buffers = image_buffers(header.channels, header.alpha, header.bit_depth, item.target.suffix, compare,
                            streams(recipe, item.mask is not None, h, w), samples or 0, save_samples,
                            recipe.posterior.copies if samples else 0)
    tiles = tile_count(h, w, recipe, prior.patch_size)
    steps += recipe.posterior.tile_steps if samples else 0
    row.update(size=[h, w], tiles=tiles, seconds=round(tiles * steps * cost.seconds_per_tile_step, 1))
    try:
        plan = plan_memory(h, w, recipe, prior.patch_size, cost, budget, baseline, buffers)
    except UsageError as error:
        row.update(action="fail", note=str(error))
        return
    row.update(max_tiles=plan["max_tiles"], output_samples=plan["output"], peak_bytes=plan["estimated_peak"])
