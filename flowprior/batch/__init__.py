"""Restore a folder of scans: plan, resume, never overwrite, manifest, failure summary, memory and time estimates.

``flowprior restore INPUT_DIR -o OUTPUT_DIR`` runs :func:`run_batch`. The rules (docs/batch.md has the long form):

* Work list: image files (.png .jpg .jpeg .tif .tiff .webp .bmp, any case) in INPUT_DIR (``recursive``: and below;
  symlinked folders are not followed), sorted; hidden files and masks (``*.mask.png``, which ``flowprior degrade``
  writes) are not inputs. A file's sibling ``<stem>.mask.png`` is used as its mask.
* Output: ``OUTPUT_DIR/<relative folder>/<stem><suffix><ext>``; ext is the input's for PNG, TIFF and lossless WebP,
  ``.png`` for everything else (lossy output only when ``format`` asks for it). OUTPUT_DIR may not be INPUT_DIR or
  inside it, and no output may resolve into the input tree or onto an input; two inputs that would share an output
  both fail with a message instead of one silently winning.
* Resume: an output counts as finished when its image *and* its sidecar exist (the sidecar is written last, both
  atomically). Finished outputs are skipped unless ``overwrite``; an image without a sidecar (a run killed between
  the two writes) is redone. Stale temporary files of planned outputs are removed first.
* Failures: a file that fails is recorded and the batch goes on; disk full, a read-only or failing output
  volume, and a manifest that cannot be written stop the batch (``BatchSummary.fatal``). Exit codes: 0 all ok,
  1 some failed, 2 usage error, 3 fatal.
* Manifest: ``OUTPUT_DIR/flowprior-manifest.jsonl``, appended (fsync per line) with ``run_start``, one ``file``
  event per input and ``run_end``; every run has a ``run_id``.
* Memory model (:func:`plan_memory`, phases in ``flowprior/batch/memory.py``): the baseline RSS plus the largest of
  reading the file, running a learned warm start's network, solving (image buffers + ``max_tiles`` tiles) and
  writing. The per-tile cost is measured on the loaded model (:func:`measure_tile_cost`); the per-pixel terms are
  constants measured on this code. Time model: ``tiles * steps * seconds per tile-step``, the last measured the
  same way.

Modules: ``plan`` (work list, output names, stale temporaries), ``memory`` (RSS, tile cost, ``--max-memory``),
``manifest`` (the JSON-lines log), ``options`` (:class:`BatchOptions`, :class:`BatchSummary`), ``item`` (restore
one file, record its outcome), ``progress`` (the file bar / JSON lines), ``dry_run``, ``ray_backend`` and
``runner`` (:func:`run_batch`).
"""

from flowprior.batch.item import record, restore_item
from flowprior.batch.manifest import MANIFEST_NAME, Manifest, read_manifest
from flowprior.batch.memory import (
    BYTES_PER_PIXEL,
    ImageBuffers,
    TileCost,
    current_rss,
    estimate,
    format_size,
    image_buffers,
    measure_tile_cost,
    memory_planner,
    parse_size,
    peak_rss,
    plan_memory,
    tile_count,
)
from flowprior.batch.options import (
    EXIT_FATAL,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    PROGRESS_MODES,
    BatchOptions,
    BatchSummary,
)
from flowprior.batch.plan import (
    FORMATS,
    IMAGE_SUFFIXES,
    WorkItem,
    output_suffix,
    plan_batch,
    remove_stale_temporaries,
)
from flowprior.batch.runner import run_batch

__all__ = [
    "BYTES_PER_PIXEL",
    "EXIT_FATAL",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_USAGE",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "MANIFEST_NAME",
    "PROGRESS_MODES",
    "BatchOptions",
    "BatchSummary",
    "ImageBuffers",
    "Manifest",
    "TileCost",
    "WorkItem",
    "current_rss",
    "estimate",
    "format_size",
    "image_buffers",
    "measure_tile_cost",
    "memory_planner",
    "output_suffix",
    "parse_size",
    "peak_rss",
    "plan_batch",
    "plan_memory",
    "read_manifest",
    "record",
    "remove_stale_temporaries",
    "restore_item",
    "run_batch",
    "tile_count",
]
