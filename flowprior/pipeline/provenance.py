"""Stage *provenance*: the sidecar ``OUT.json`` (docs/batch.md lists its fields), written last, so that its presence
means the image is complete; :func:`flowprior.pipeline.replay.replay_options` reads one back."""

from __future__ import annotations

import json
import platform
import time
from typing import Any

import numpy as np
import torch

import flowprior
from flowprior.hashing import bytes_sha256, file_sha256
from flowprior.io import atomic_write_bytes
from flowprior.pipeline.paths import pending_path, sidecar_path
from flowprior.pipeline.request import RestoreRequest, RestoreState
from flowprior.pipeline.resolve import now


def write_provenance(request: RestoreRequest, state: RestoreState) -> dict[str, Any]:
    """Write the sidecar and drop the pending marker; returns the sidecar dict."""
    info = dict(state.info)
    timings = dict(info.pop("timings_s"))
    timings.update(write=round(state.write_seconds, 3), wall=round(time.perf_counter() - state.clock, 3))
    sidecar = {
        "flowprior_version": flowprior.__version__,
        "event": {
            "type": "restoration",
            "started": state.started_at,
            "finished": now(),
            "outcome": "success",
            "replay_of": None if request.params_from is None else str(request.params_from),
        },
        "input": describe_input(request, state),
        "output": describe_output(request, state),
        "mask": None if state.mask is None else {"path": str(state.mask), "sha256": file_sha256(state.mask),
                                                 "inverted": state.invert_mask},
        "colour": state.colour,
        "strength": state.strength,
        **info,  # recipe (seed, tiling), degradation spec, sampled params, tiles, energies, model
        "memory": state.memory,
        "timings_s": timings,
        "runtime": {
            "threads": state.threads,
            "device": "cpu",
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
        "libraries": library_versions(),
        "warnings": state.notes,
        "jpeg_from_file": state.jpeg_note,  # what the input's own JPEG tables said, when it is a JPEG
        "estimated": None if state.found is None else state.found.report,  # --degradation auto: every estimate
        # --samples: the sampler's settings and stats, the std map (its scale and meaning) and saved samples
        "posterior": state.posterior,
    }
    atomic_write_bytes(sidecar_path(request.target), json.dumps(sidecar, indent=2).encode())
    pending_path(request.target).unlink(missing_ok=True)  # the image and its sidecar are complete
    return sidecar


def describe_input(request: RestoreRequest, state: RestoreState) -> dict[str, Any]:
    image = state.image
    return {
        "path": str(request.source),
        "sha256": state.input_sha256,
        "format": image.format,
        "mode": image.mode,
        "bit_depth": image.bit_depth,
        "size": list(image.size),
        "alpha": image.has_alpha,
        "icc_sha256": bytes_sha256(image.icc_profile),
        "exif": image.exif is not None,
    }


def describe_output(request: RestoreRequest, state: RestoreState) -> dict[str, Any]:
    review = state.review
    return {
        "path": str(request.target),
        "sha256": file_sha256(request.target),
        "format": state.fmt.name,
        "bit_depth": state.bit_depth,
        "size": list(state.store.shape[:2]),  # the input's, or factor x larger after a downsampling
        "alpha": state.keep_alpha,
        "quality": state.quality,
        "compare": None if review is None else {"path": str(review), "sha256": file_sha256(review)},
    }


def library_versions() -> dict[str, str]:
    import PIL

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }
    try:
        import cv2  # lazily: only for the version string

        versions["opencv"] = cv2.__version__
    except ImportError:
        pass
    return versions
