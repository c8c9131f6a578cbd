"""``--backend ray``: the files of a batch spread over Ray workers; this process keeps the manifest."""

from __future__ import annotations

from typing import Any

from flowprior.batch.item import failure, record, restore_item
from flowprior.batch.memory import memory_planner
from flowprior.batch.plan import WorkItem
from flowprior.errors import UsageError

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


def run_on_ray(todo, recipe, kwargs, options, model_sha256, manifest, report, summary) -> None:
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
    pending = {task.remote(item, recipe, kwargs, options.max_memory, model_sha256): item for item in todo}
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
