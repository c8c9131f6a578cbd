"""``--dry-run``: the work list with estimated seconds and peak memory per file; nothing is written."""

from __future__ import annotations

import json

from flowprior.batch.memory import current_rss, format_size, memory_planner, tile_count
from flowprior.errors import UsageError


def _steps(recipe, prior) -> int:
    return sum(stage.steps for stage in recipe.stages(prior.num_levels))


def dry_run(items, todo, recipe, prior, cost, options, summary, echo, compare: bool = False,
            samples: int | None = None, save_samples: bool = False) -> None:
    """Fill ``summary.planned`` and print the work list with estimated seconds and peak memory per file.

    The totals (files, seconds, peak) count only the files that would be restored: not the finished, the failing
    (unreadable header, over the memory bound: action ``fail``) or those beyond ``--limit``."""
    baseline, steps, chosen = current_rss(), _steps(recipe, prior), {id(i) for i in todo}
    planner = memory_planner(options.max_memory, cost)  # the one a restore plans with (default: half the free memory)
    total_seconds, peak, count = 0.0, baseline, 0
    for item in items:
        row = {"input": str(item.relative), "output": str(item.target), "action": item.action, "note": item.note}
        if item.action in ("restore", "redo") and id(item) not in chosen:
            row["action"] = "beyond --limit"
        elif id(item) in chosen and item.size is None:
            row.update(action="fail", note="cannot read the image's header")
        elif id(item) in chosen:
            _plan_row(row, item, recipe, prior, cost, planner, steps, compare, samples, save_samples)
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
                f"  {_size_text(row)}  {row['tiles']} tiles  ~{row['seconds']:.0f} s"
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


def _size_text(row: dict) -> str:
    """``HxW``, or ``HxW -> H'xW'`` when the restore's output is larger (a super-resolution)."""
    text = f"{row['size'][0]}x{row['size'][1]}"
    if row["output_size"] != row["size"]:
        text += f" -> {row['output_size'][0]}x{row['output_size'][1]}"
    return text


def _plan_row(row: dict, item, recipe, prior, cost, planner, steps: int, compare: bool,
              samples: int | None = None, save_samples: bool = False) -> None:
    """Size, tiles, seconds and the memory plan of one file that would be restored (``fail`` when it cannot fit);
    with posterior samples, their chain steps (one tile-step each) and buffers are counted too.

    The plan is the single-file restore's (:func:`flowprior.pipeline.plan.plan`), so a degradation that changes
    the size (a ``downsample`` restored by super-resolution) is planned, tiled and timed on its larger clean grid
    (``output_size``), not on the header's."""
    from flowprior.pipeline.operator import clean_size
    from flowprior.pipeline.plan import plan

    (h, w), header = item.size, item.header
    out_h, out_w = clean_size(recipe, h, w)
    tiles = tile_count(out_h, out_w, recipe, prior.patch_size)
    steps += recipe.posterior.tile_steps if samples else 0
    row.update(size=[h, w], output_size=[out_h, out_w], tiles=tiles,
               seconds=round(tiles * steps * cost.seconds_per_tile_step, 1))
    shape = (h, w, header.channels, header.alpha, header.bit_depth)
    try:
        memory = plan(planner, shape, item.target, recipe, prior, compare, item.mask, replay=False,
                      samples=samples, save_samples=save_samples)
    except UsageError as error:
        row.update(action="fail", note=str(error))
        return
    row.update(max_tiles=memory["max_tiles"], output_samples=memory["output"], peak_bytes=memory["estimated_peak"])
