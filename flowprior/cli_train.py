"""``flowprior train prior|defects|warmstart``: parsers and handlers of the training commands (see
:mod:`flowprior.cli`)."""

from __future__ import annotations

import argparse
import json

from flowprior.errors import UsageError
from flowprior.recipe import add_set_option, parse_set_options


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model", description="Train a model from a recipe.")
    models = parser.add_subparsers(dest="model_kind", metavar="MODEL", required=True)
    _add_simple_train_parser(models, "prior", _run_train_prior, "train a flow prior",
                             "Train a Glow prior; writes last.pt (resumable), prior.pt and log.jsonl into the "
                             "recipe's output folder.", "e.g. cpu-default", "optim.steps=5000")
    _add_simple_train_parser(models, "defects", _run_train_defects, "train the learned defect detector",
                             "Train the detector of holes and scratches on synthetic defects over the photo pool; "
                             "writes last.pt (resumable), defects.pt, best.pt and log.jsonl into the recipe's "
                             "output folder.", "e.g. defects", "optim.steps=3000")
    warm = models.add_parser("warmstart", help="train a learned warm start (ResFlow, IR-Flow or FlowIE)",
                             description="Train a warm start on degraded/clean pairs synthesized on the fly from the "
                             "photo pool; writes last.pt (resumable), warmstart.pt, best.pt and log.jsonl into the "
                             "recipe's output folder. Restore with it: flowprior restore --init METHOD "
                             "--set init_checkpoint=OUTPUT/best.pt.")
    warm.add_argument("--method", required=True, choices=("resflow", "irflow", "flowie"), help="which warm start")
    warm.add_argument("--recipe", metavar="R", default=None,
                      help="a training recipe: a YAML path or a name in recipes/train (default: warmstart-METHOD)")
    add_set_option(warm, "a recipe key, e.g. optim.steps=5000 or irflow.width=48")
    warm.add_argument("--resume", action="store_true", help="continue from OUTPUT/last.pt when it exists")
    warm.add_argument("--quiet", action="store_true", help="no progress bar")
    warm.set_defaults(handler=_run_train_warmstart)


def _add_simple_train_parser(models, name: str, handler, help_text: str, description: str, example: str,
                             set_example: str) -> None:
    """A ``train`` subcommand that takes a recipe, ``--set``, ``--resume`` and ``--quiet`` (prior, defects)."""
    parser = models.add_parser(name, help=help_text, description=description)
    parser.add_argument("--recipe", metavar="R", required=True,
                        help=f"a training recipe: a YAML path or a name in recipes/train ({example})")
    add_set_option(parser, f"a recipe key, e.g. {set_example}")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/last.pt when it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=handler)


def _train_from_recipe(args: argparse.Namespace, recipe_class, train) -> int:
    from flowprior.recipe import find_recipe, load_recipe

    recipe = load_recipe(recipe_class, find_recipe(args.recipe, "train"), parse_set_options(args.overrides))
    summary = train(recipe, resume=args.resume, progress=not args.quiet)
    print(json.dumps({"output": recipe.output, **summary}))
    return 0


def _run_train_prior(args: argparse.Namespace) -> int:
    from flowprior.train_prior import PriorTrainRecipe, train_prior

    return _train_from_recipe(args, PriorTrainRecipe, train_prior)


def _run_train_defects(args: argparse.Namespace) -> int:
    from flowprior.train_defects import DefectTrainRecipe, train_defects

    return _train_from_recipe(args, DefectTrainRecipe, train_defects)


def _run_train_warmstart(args: argparse.Namespace) -> int:
    from flowprior.recipe import find_recipe, load_recipe
    from flowprior.train_warmstart import WarmstartTrainRecipe, train_warmstart

    path = find_recipe(args.recipe or f"warmstart-{args.method}", "train")
    overrides = parse_set_options(args.overrides)
    stated = load_recipe(WarmstartTrainRecipe, path, overrides).method
    if args.recipe is not None and "method" not in overrides and stated != args.method:
        raise UsageError(f"recipe {args.recipe} trains {stated!r}, not {args.method!r}: "
                         f"pass --method {stated} or another recipe")
    recipe = load_recipe(WarmstartTrainRecipe, path, {**overrides, "method": args.method})
    summary = train_warmstart(recipe, resume=args.resume, progress=not args.quiet)
    print(json.dumps({"output": recipe.output, **summary}))
    return 0
