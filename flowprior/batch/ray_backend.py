"""``--backend ray``: the files of a batch spread over Ray workers; this process keeps the manifest.

Everything that decides a file's bytes is fixed here, in the driver, so that a worker gives the bytes the local
backend gives: the recipe (seed included), the thread count (``kwargs["threads"]``) and the number of tiles solved
at once, planned from the file's header with the driver's memory planner (the local backend's plan, whatever the
worker's own free memory or resident size); the worker only checks that the plan fits the same bound.
"""

from __future__ import annotations

import copy
from typing import Any

from flowprior.batch.item import failure, record, restore_item
from flowprior.batch.memory import memory_planner
from flowprior.batch.plan import WorkItem
from flowprior.errors import UsageError
from flowprior.restore_file import plan_from_header

_WORKER_STATE: dict[str, Any] = {}  # per Ray worker process: the loaded prior and memory planner, by model


def _ray_restore(item: WorkItem, recipe, kwargs: dict[str, Any], max_memory: int | None, model_sha256: str | None):
    """Body of a Ray task: load the model once per worker process, then :func:`restore_item`."""
    from flowprior.restoration import load_model

    if _WORKER_STATE.get("model") != recipe.model:
        _WORKER_STATE.update(model=recipe.model, prior=load_model(recipe.model), planner=memory_planner(max_memory))
    prior = _WORKER_STATE["prior"]
    if model_sha256 and getattr(prior, "sha256", None) != model_sha256:
        return failure(f"the worker's {recipe.model} is not the driver's model (sha256)", "UsageError", fatal=True)
    return restore_item(item, recipe, prior, kwargs, _WORKER_STATE["planner"], progress=False)


def _planned(item: WorkItem, recipe, prior, planner, kwargs: dict[str, Any]):
    """(recipe, kwargs) for one file's task with ``max_tiles`` planned here; a plan that cannot fit raises
    UsageError (the file fails here, no task is started)."""
    plan = plan_from_header(item.source, item.target, recipe, prior, planner, kwargs.get("compare", False), item.mask,
                            samples=kwargs.get("samples"), save_samples=kwargs.get("save_samples", False))
    if plan is None:  # no readable header: the worker plans (and most likely reports the unreadable file)
        return recipe, kwargs
    planned = copy.deepcopy(recipe)
    planned.tiling.max_tiles = plan["max_tiles"]
    return planned, {**kwargs, "keep_tiling": True}


def run_on_ray(todo, recipe, prior, planner, kwargs, options, manifest, report, summary) -> None:
    """Spread the files over Ray workers (``RAY_ADDRESS`` picks a cluster, else a local instance starts). Workers
    write the outputs (the output folder must be shared); only this process writes the manifest, in completion
    order, with the same resume and failure rules as the local backend."""
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install 'flowprior[ray]'") from None
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    # each task reserves the CPUs of the thread count every file runs with (the same bytes as the local backend)
    task = ray.remote(num_cpus=kwargs.get("threads") or 1, max_retries=0)(_ray_restore)
    model_sha256, pending = getattr(prior, "sha256", None), {}
    for item in todo:
        try:
            item_recipe, item_kwargs = _planned(item, recipe, prior, planner, kwargs)
        except UsageError as error:  # over the memory bound: fails here, like the local backend's restore_file
            report.start(item)
            record(item, failure(str(error), "UsageError"), manifest, report, summary)
            continue
        pending[task.remote(item, item_recipe, item_kwargs, planner.budget, model_sha256)] = item
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            item = pending.pop(done[0])
            report.start(item)
            try:
                outcome = ray.get(done[0])
            except Exception as error:  # noqa: BLE001 - a worker that died (killed, out of memory) fails its file
                outcome = failure(f"Ray task failed: {' '.join(str(error).split())[:500]}", type(error).__name__)
            record(item, outcome, manifest, report, summary)
            if summary.fatal:
                break
    finally:
        for ref in pending:  # fatal error or Ctrl-C: unfinished files are left for the next run
            ray.cancel(ref, force=True)
