"""Stage *write*: the output image (EXIF ``ProcessingSoftware`` set, ICC and DPI carried) and the review image,
encoded from their row stores, with a pending marker until the sidecar is written."""

from __future__ import annotations

import time

import flowprior
from flowprior.io import PROCESSING_SOFTWARE_TAG, set_exif_text, write_array
from flowprior.pipeline.clean_grid import input_rows
from flowprior.pipeline.paths import compare_path, mark_pending
from flowprior.pipeline.request import RestoreRequest, RestoreState
from flowprior.review import side_by_side

_EXIF_MAX = 65000  # a JPEG APP1 segment holds at most 65533 bytes


def write_image(request: RestoreRequest, state: RestoreState) -> None:
    """Write the image (and ``--compare``'s review image); what the output format could not keep goes to the notes."""
    started = time.perf_counter()
    image, fmt = state.image, state.fmt
    if state.bit_depth != image.bit_depth:
        state.notes.append(f"{fmt.name} stores 8 bits: the {image.bit_depth}-bit input was written at 8 bits")
    if image.has_alpha and not state.keep_alpha:
        state.notes.append(f"{fmt.name} has no alpha channel: the input's alpha was dropped")
    exif = image.exif
    if exif:
        exif = set_exif_text(exif, PROCESSING_SOFTWARE_TAG, f"flowprior {flowprior.__version__}")
        if fmt.name == "JPEG" and len(exif) > _EXIF_MAX:
            exif = image.exif
            state.notes.append("EXIF too large to add ProcessingSoftware inside a JPEG segment; carried unchanged")
    if image.truncated:
        state.notes.append(f"{request.source} is truncated: its missing rows were restored from black "
                           "(--accept-truncated)")
    mark_pending(request.target)
    write_array(request.target, state.store, icc_profile=image.icc_profile, exif=exif, quality=state.quality,
                dpi=image.dpi)
    if request.compare:
        state.review = compare_path(request.target)
        write_array(state.review, side_by_side(input_rows(state), state.review_rows, extra=state.review_panels))
    state.write_seconds = time.perf_counter() - started
