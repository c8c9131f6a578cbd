"""A replay (``--params-from``): a sidecar read back into the settings that give the same bytes, and the recipe a
run resolves to, from its options or from the sidecar it replays (:func:`resolve_recipe`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flowprior.errors import UsageError
from flowprior.hashing import file_sha256
from flowprior.pipeline.recipe import RestoreRecipe, build_recipe
from flowprior.recipe import from_dict

#: The ``restore_file`` options that choose what is solved; a replay (``--params-from``) takes them from the sidecar.
SOLVE_OPTIONS = ("degradation", "mask", "recipe", "settings", "operator_params", "steps", "seed", "init", "model",
                 "chroma", "strength", "max_memory", "threads", "samples")


def resolve_recipe(
    params_from: str | Path | None = None, **options: Any
) -> tuple[RestoreRecipe, dict[str, Any] | None]:
    """The resolved recipe of a run, and the sidecar's settings (:func:`replay_options`) when it replays one.

    Without ``params_from``: ``recipe`` (an object, a YAML path or the defaults) with ``settings`` and the
    ``degradation``, ``seed``, ``init`` and ``model`` options on top (each when not None), ``samples`` as
    ``posterior.samples``, and ``operator_params``.
    With it: the sidecar's recipe, and any of :data:`SOLVE_OPTIONS` that is given is a UsageError. An option is
    given unless it is None or empty, so ``--seed 0`` and ``--strength 0`` count. ``steps`` is left to the caller
    (it needs the loaded prior's number of levels).
    """
    unknown = set(options) - set(SOLVE_OPTIONS)
    if unknown:
        raise TypeError(f"unknown solve options: {', '.join(sorted(unknown))}")
    if params_from is not None:
        given = [name for name in SOLVE_OPTIONS if _given(options.get(name))]
        if given:
            raise UsageError(f"--params-from replays a recorded run; it cannot be combined with {', '.join(given)}")
        replay = replay_options(params_from)
        return replay["recipe"], replay
    overrides = dict(options.get("settings") or {})
    overrides.update({key: options[key] for key in ("degradation", "seed", "init", "model")
                      if options.get(key) is not None})
    if options.get("samples") is not None:  # --samples N: N of the recipe's posterior section
        overrides["posterior.samples"] = options["samples"]
    return build_recipe(options.get("recipe"), overrides, options.get("operator_params") or {}), None


def _given(value: Any) -> bool:
    if getattr(value, "default", False):  # the default memory planner: not a choice of the user's
        return False
    return value is not None and not (isinstance(value, (str, dict, list, tuple)) and len(value) == 0)


def replay_options(sidecar: str | Path) -> dict[str, Any]:
    """Read a sidecar into the settings that replay its run: the resolved recipe (seed, schedule, tiling with
    ``max_tiles``), the mask, the colour mode actually used, strength, quality, thread count, model sha256 and
    whether posterior samples were drawn (``samples``: the recipe's ``posterior.samples``, else None).

    Raises:
        UsageError: not a readable flowprior sidecar, or its mask file changed since.
    """
    path = Path(sidecar)
    try:
        data = json.loads(path.read_text())
        recipe = from_dict(RestoreRecipe, data["recipe"])
        colour, output = data["colour"], data["output"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise UsageError(f"cannot replay {path}: not a readable flowprior sidecar ({error})") from None
    mask = data.get("mask")
    if mask and Path(mask["path"]).is_file() and file_sha256(mask["path"]) != mask["sha256"]:
        raise UsageError(f"cannot replay {path}: the mask {mask['path']} changed since the run")
    mode = colour.get("mode")
    return {
        "recipe": recipe,
        "mask": mask["path"] if mask else None,
        "invert_mask": bool(mask and mask.get("inverted")),
        "chroma": mode if mode in ("keep", "restore") else "auto",
        "strength": float(data.get("strength", 1.0)),
        "quality": output.get("quality"),
        "compare": bool(output.get("compare")),
        "threads": data.get("runtime", {}).get("threads"),
        "input_sha256": (data.get("input") or {}).get("sha256"),
        "model_sha256": (data.get("model") or {}).get("sha256"),
        "samples": recipe.posterior.samples if data.get("posterior") else None,
    }
