"""The file restore, stage after stage (:func:`run_restore`)::

    resolve_settings -> choose_degradation -> claim_outputs -> load_prior      (resolve: nothing decoded yet)
    plan_memory                                                                 (plan: from the file's header)
    read_input -> open_output_rows                                              (read)
    restore_pixels = restore_rows: bind_operator -> warm_start -> solve_tiles -> blend
    sample_posterior (--samples N: from the MAP rows, same recipe, mask, prior)  (posterior samples)
    write_image -> write_posterior -> write_provenance                           (write + provenance)

Each stage reads the frozen :class:`~flowprior.pipeline.request.RestoreRequest` and fills its part of the
:class:`~flowprior.pipeline.request.RestoreState`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from flowprior.pipeline.output_rows import open_output_rows, output_sink, solver_input
from flowprior.pipeline.plan import plan_memory
from flowprior.pipeline.provenance import write_provenance
from flowprior.pipeline.read import read_input
from flowprior.pipeline.request import RestoreRequest, RestoreState
from flowprior.pipeline.resolve import choose_degradation, claim_outputs, load_prior, resolve_settings
from flowprior.pipeline.rows import restore_rows
from flowprior.pipeline.samples import keep_map_rows, open_posterior_rows, sample_posterior, write_posterior
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
            open_posterior_rows(request, state)
            restore_pixels(request, state)
            with solver_threads(state):  # the chains' float reductions depend on it too
                sample_posterior(request, state)
            write_image(request, state)
            write_posterior(request, state)
    finally:
        for opened in state.stores:
            opened.close()
    state.notes += [f"{w.category.__name__}: {w.message}" for w in caught]
    return write_provenance(request, state)


def restore_pixels(request: RestoreRequest, state: RestoreState) -> None:
    """:func:`~flowprior.pipeline.rows.restore_rows` on the file's rows into the output rows (and, with
    ``--samples``, the MAP rows the chains start from), at the request's thread count."""
    with solver_threads(state):
        state.info = restore_rows(solver_input(state), state.recipe, mask=state.mask_tensor, prior=state.prior,
                                  progress=request.progress, emit=keep_map_rows(state, output_sink(state)))


@contextlib.contextmanager
def solver_threads(state: RestoreState) -> Iterator[None]:
    """Torch at the request's thread count while the solver or the sampler runs (float reductions depend on it;
    a replay uses the recorded one)."""
    state.threads = torch.get_num_threads() if state.threads is None else state.threads
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(state.threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
