"""Command line: ``flowprior <command> ...``. Parsing and reporting only; the work lives in other modules.

Adding a command: write ``add_<name>_parser(subparsers)`` that creates the sub-parser and sets
``handler=_run_<name>``, a handler ``_run_<name>(args) -> int`` that imports its job module lazily (so
``flowprior --help`` stays fast), and list the adder in ``COMMANDS``.

Errors: :func:`main` is the one error boundary. User errors (bad arguments, missing or unreadable files, bad
values: ``OSError``, ``ValueError`` and their subclasses ``ImageReadError`` and ``UsageError``) print one line
``flowprior: error: <message>`` on stderr and exit with 2; Ctrl-C exits with 130; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from flowprior import __version__
from flowprior.errors import UsageError
from flowprior.recipe import parse_set_options

PROG = "flowprior"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """Argument errors become UsageError, so they reach the single error boundary in :func:`main`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ------------------------------------------------------------------------------------------ --set key=value


def _add_set_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"set {what} (repeatable); VALUE is read as YAML: 30 is an int, 0.5 a float, 5:15 a string",
    )


# -------------------------------------------------------------------------------------------------- degrade


def add_degrade_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "degrade",
        help="corrupt an image with a seeded degradation chain",
        description="Degrade an image and write OUT, OUT's stem + .mask.png (when pixels are removed; "
        "255 = observed, 0 = missing) and OUT.json (spec, seed, sampled params). "
        "Use .png or .tif for OUT to store the degraded pixels exactly.",
    )
    parser.add_argument("input", metavar="IN", help="the clean image")
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="the degraded image to write")
    parser.add_argument(
        "-d",
        "--degradation",
        required=True,
        metavar="SPEC",
        help="e.g. 'jpeg+noise+mask' or 'jpeg(quality=30)'",
    )
    _add_set_option(parser, "an operator argument, e.g. jpeg.quality=30")
    parser.add_argument("--seed", type=int, default=0, help="seed of the parameter sampler (default 0)")
    parser.set_defaults(handler=_run_degrade)


def _run_degrade(args: argparse.Namespace) -> int:
    from flowprior.degrade import degrade_file

    result = degrade_file(
        args.input, args.output, args.degradation, parse_set_options(args.overrides), args.seed
    )
    for note in result.notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    written = [result.image, result.mask, result.sidecar]
    print("wrote " + ", ".join(str(p) for p in written if p is not None))
    return 0


# -------------------------------------------------------------------------------------------------- metrics


def add_metrics_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="PSNR, SSIM and MS-SSIM between two images",
        description="Full-reference metrics on the colour channels (RGB, or gray), data range 1; alpha is "
        "ignored. MS-SSIM needs both sides > 160 pixels after the border crop, else it is reported as n/a.",
    )
    parser.add_argument("reference", metavar="REF", help="the reference (clean) image")
    parser.add_argument("test", metavar="TEST", help="the image to score")
    parser.add_argument(
        "--border", type=int, default=0, metavar="N", help="pixels cropped from each side first"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(handler=_run_metrics)


def _run_metrics(args: argparse.Namespace) -> int:
    from flowprior.metrics import compare_files

    result = compare_files(args.reference, args.test, border=args.border)
    if args.json:
        finite = {
            k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()
        }
        print(json.dumps({"reference": args.reference, "test": args.test, **finite}))
        return 0
    ms_ssim = (
        "n/a (image too small for 5 scales)" if result["ms_ssim"] is None else f"{result['ms_ssim']:.4f}"
    )
    print(f"PSNR     {result['psnr']:.2f} dB")
    print(f"SSIM     {result['ssim']:.4f}")
    print(f"MS-SSIM  {ms_ssim}")
    return 0


# ------------------------------------------------------------------------------------------------- restore


def add_restore_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore a degraded image with the flow prior",
        description="Restore IN by latent MAP under the flow prior and write OUT plus OUT.json (resolved recipe, "
        "operator params, per-stage energies, timings, model sha256). Never writes over IN.",
    )
    parser.add_argument("input", metavar="IN", help="the degraded image")
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="the restored image (.png/.tif keep 16 bit)")
    parser.add_argument("-d", "--degradation", default=None, metavar="SPEC",
                        help="what happened to IN, e.g. 'jpeg+noise+mask' (default: the recipe's)")
    parser.add_argument("--mask", metavar="M", default=None,
                        help="mask image of missing pixels: nonzero (white) = observed, 0 (black) = missing")
    parser.add_argument("--invert-mask", action="store_true", help="flip the mask: nonzero = missing")
    parser.add_argument("--recipe", metavar="R", default="auto",
                        help="a restore recipe: a YAML path, a name in recipes/restore, or 'auto' (default): the "
                        "recipe tuned for the degradation (noise, jpeg, inpaint, or default for combinations)")
    _add_set_option(parser, "a recipe key (solver.weight=400) or an operator argument (jpeg.quality=30)")
    parser.add_argument("--steps", type=int, default=None, help="total optimizer steps (schedule rescaled)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the operator's parameter sampler")
    parser.add_argument("--init", default=None, help="warm start (default: the recipe's, 'identity')")
    parser.add_argument("--model", default=None, help="prior checkpoint path, or 'default' (embedded)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_restore)


def _run_restore(args: argparse.Namespace) -> int:
    from flowprior.recipe import find_recipe
    from flowprior.restoration import auto_recipe_name, split_settings
    from flowprior.restore_file import restore_file

    recipe_settings, operator_params = split_settings(parse_set_options(args.overrides))
    recipe_name = args.recipe
    if recipe_name == "auto":
        recipe_name = auto_recipe_name(args.degradation or "jpeg+noise")
    recipe_path = find_recipe(recipe_name, "restore")
    sidecar = restore_file(
        args.input, args.output, degradation=args.degradation, mask=args.mask, invert_mask=args.invert_mask,
        recipe=recipe_path, settings=recipe_settings, operator_params=operator_params, steps=args.steps,
        seed=args.seed, init=args.init, model=args.model, progress=not args.quiet,
    )
    seconds = sidecar["timings_s"]["total"]
    print(f"wrote {args.output} and {args.output}.json ({sidecar['tiles']['count']} tiles, {seconds:.1f} s)")
    return 0


# --------------------------------------------------------------------------------------------------- train


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model", description="Train a model from a recipe.")
    models = parser.add_subparsers(dest="model_kind", metavar="MODEL", required=True)
    prior = models.add_parser("prior", help="train a flow prior",
                              description="Train a Glow prior; writes last.pt (resumable), prior.pt and log.jsonl "
                              "into the recipe's output folder.")
    prior.add_argument("--recipe", metavar="R", required=True,
                       help="a training recipe: a YAML path or a name in recipes/train (e.g. cpu-default)")
    _add_set_option(prior, "a recipe key, e.g. optim.steps=5000")
    prior.add_argument("--resume", action="store_true", help="continue from OUTPUT/last.pt when it exists")
    prior.add_argument("--quiet", action="store_true", help="no progress bar")
    prior.set_defaults(handler=_run_train_prior)


def _run_train_prior(args: argparse.Namespace) -> int:
    from flowprior.recipe import find_recipe, load_recipe
    from flowprior.train_prior import PriorTrainRecipe, train_prior

    recipe = load_recipe(PriorTrainRecipe, find_recipe(args.recipe, "train"), parse_set_options(args.overrides))
    summary = train_prior(recipe, resume=args.resume, progress=not args.quiet)
    print(json.dumps({"output": recipe.output, **summary}))
    return 0


# ------------------------------------------------------------------------------------------------------ main

COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_degrade_parser, add_restore_parser, add_metrics_parser, add_train_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command in :data:`COMMANDS` registered."""
    parser = _Parser(prog=PROG, description="Generic image restoration with flow-based priors.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as done:  # --help / --version
            return int(done.code or 0)
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (OSError, ValueError) as error:  # includes ImageReadError and UsageError
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USER_ERROR


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    return text


if __name__ == "__main__":
    sys.exit(main())
