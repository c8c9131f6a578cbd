"""The file restore, stage after stage (:func:`run_restore`)::

    resolve_settings -> choose_degradation -> claim_outputs -> load_prior      (resolve: nothing decoded yet)
    plan_memory                                                                 (plan: from the file's header)
    read_input -> open_output_rows                                              (read)
    restore_pixels = restore_rows: bind_operator -> warm_start -> solve_tiles -> blend
    [posterior samples: the place of a --samples stage]
    write_image -> write_provenance                                             (write + provenance)

Each stage reads the frozen :class:`~flowprior.pipeline.request.RestoreRequest` and fills its part of the
:class:`~flowprior.pipeline.request.RestoreState`.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from flowprior.pipeline.output_rows import open_output_rows, output_sink, solver_input
from flowprior.pipeline.plan import plan_memory
from flowprior.pipeline.provenance import write_provenance
from flowprior.pipeline.read import read_input
from flowprior.pipeline.request import RestoreRequest, RestoreState
from flowprior.pipeline.resolve import choose_degradation, claim_outputs, load_prior, resolve_settings
from flowprior.pipeline.rows import restore_rows
from flowprior.pipeline.write import write_image


def run_restore(request: RestoreRequest) -> dict[str, Any]:
    """Restore ``request.source`` into ``request.target`` and its sidecar; returns the sidecar dict.

    Raises:
        UsageError: bad options, writing over an input or (without ``overwrite``) an existing file, a memory bound
            that cannot be met, a mask of another size.
        ImageReadError: an unreadable input or mask.
    """
    state = resolve_settings(request)
    choose_degradation(request, state)
    claim_outputs(request, state)
    load_prior(request, state)
    try:
        with warnings.catch_warnings(record=True) as caught:  # every warning of the restore goes to the sidecar
            warnings.simplefilter("always")
            plan_memory(request, state)
            read_input(request, state)
            open_output_rows(request, state)
            restore_pixels(request, state)
            # posterior samples (a --samples option) go here: flowprior.posterior.sampling.sample_rows starts its
            # chains from the MAP rows just restored, under the same recipe, mask and prior
            write_image(request, state)
    finally:
        for opened in state.stores:
            opened.close()
    state.notes += [f"{w.category.__name__}: {w.message}" for w in caught]
    return write_provenance(request, state)


def restore_pixels(request: RestoreRequest, state: RestoreState) -> None:
    """:func:`~flowprior.pipeline.rows.restore_rows` on the file's rows into the output rows, at the request's
    thread count (float reductions depend on it; a replay uses the recorded one)."""
    state.threads = torch.get_num_threads() if state.threads is None else state.threads
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(state.threads)
    try:
        state.info = restore_rows(solver_input(state), state.recipe, mask=state.mask_tensor, prior=state.prior,
                                  progress=request.progress, emit=output_sink(state))
    finally:
        torch.set_num_threads(previous_threads)
