"""Restore one file: read -> restore -> write the image and a provenance sidecar. What ``flowprior restore`` runs.

Fidelity to the master (what an archive expects of a derivative):

* **Bit depth**: 16-bit in gives 16-bit out when the output format holds it (PNG, TIFF); else 8-bit.
* **Grayscale** stays one channel; **alpha** passes through unchanged (dropped, with a warning, for JPEG output).
* **ICC profile and EXIF** are carried over. EXIF ``ProcessingSoftware`` (0x000B) is set to ``flowprior <version>``;
  ``Software`` (0x0131) is kept because EXIF defines it as the capture device's software (the scanner's).
* **Colour** (``chroma``, :mod:`flowprior.tone`): ``"keep"`` restores the luminance only and keeps the input's
  chroma; ``"restore"`` restores R, G and B; ``"auto"`` (default) keeps chroma when the image is a toned or
  monochrome print (sepia, selenium, cyanotype, a gray scan saved as RGB) and restores colour photos fully - see
  :func:`~flowprior.tone.chroma_residual`.
  Luminance restoration: convert to YCbCr (BT.601 full range, the JPEG/JFIF transform, in the file's own encoded
  RGB), restore Y as a one-channel image, then rebuild RGB from the restored Y and the input's Cb, Cr. Restoring
  Y *as an image* (rather than restoring RGB and re-imposing chroma afterwards) keeps the JPEG data term exact,
  because JPEG quantizes luma on its own, and it cannot shift the tone. Missing (masked) pixels take their chroma
  from the image's toning curve (mean Cb, Cr per luminance bin) at the restored Y. A noise level given for RGB is
  used as is for Y (an overestimate of 1/0.67 for independent RGB noise; scanner grain is mostly luminance).
* **Strength** ``s`` in [0, 1] blends ``s * restored + (1 - s) * input`` on observed pixels (the archival "do less"
  control); missing pixels always take the restoration.
* **Large scans** stream: the file is kept as its 8/16-bit samples, the solver reads float rows a band of tile rows
  at a time (:func:`~flowprior.pipeline.rows.restore_rows`), and the restored rows go through colour, strength and
  quantization straight into the output array (in a file when the memory plan says so), from which the PNG/TIFF
  and the review image are encoded a block of rows at a time. The bytes are those of a whole-image restore.

The sidecar (``OUT.json``, written last, so its presence means the file is complete) records the provenance listed
in docs/batch.md; :func:`~flowprior.pipeline.replay.replay_options` turns one back into the arguments that replay the run bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowprior.pipeline.paths import (
    compare_path,
    detected_mask_path,
    mark_pending,
    pending_path,
    sidecar_path,
)
from flowprior.pipeline.plan import plan_from_header
from flowprior.pipeline.read import read_mask
from flowprior.pipeline.replay import SOLVE_OPTIONS, replay_options, resolve_recipe
from flowprior.pipeline.request import RestoreRequest
from flowprior.pipeline.run import run_restore

__all__ = [
    "SOLVE_OPTIONS", "RestoreRequest", "compare_path", "detected_mask_path", "mark_pending", "pending_path",
    "plan_from_header", "read_mask", "replay_options", "resolve_recipe", "restore_file", "run_restore",
    "sidecar_path",
]


def restore_file(source: str | Path, target: str | Path, **options: Any) -> dict[str, Any]:
    """Restore ``source`` into ``target`` (+ ``target.json``, + the review image when ``compare``): the keyword
    form of :func:`~flowprior.pipeline.run.run_restore`. ``options`` are the fields of
    :class:`~flowprior.pipeline.request.RestoreRequest`, which documents each.

    Returns:
        The sidecar dict (also written to ``sidecar_path(target)``).

    Raises:
        UsageError: bad options, writing over an input or (without ``overwrite``) an existing file, a memory bound
            that cannot be met, a mask of another size.
        ImageReadError: an unreadable input or mask.
        TypeError: an option :class:`RestoreRequest` does not have.
    """
    return run_restore(RestoreRequest(Path(source), Path(target), **options))
