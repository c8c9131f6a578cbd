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
from flowprior.cli_train import add_train_parser
from flowprior.errors import UsageError
from flowprior.recipe import add_set_option, parse_set_options

PROG = "flowprior"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """Argument errors become UsageError, so they reach the single error boundary in :func:`main`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


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
    add_set_option(parser, "an operator argument, e.g. jpeg.quality=30")
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
        help="restore a degraded image, or a folder of them, with the flow prior",
        description="Restore IN by latent MAP under the flow prior and write OUT plus OUT.json (provenance: input "
        "and output sha256, resolved recipe, seed, operator params, tiling, timings, model sha256, library "
        "versions, warnings). When IN is a folder, OUT is the output folder: relative paths and stems are kept, "
        "finished files are skipped, failures are summarized, and OUT/flowprior-manifest.jsonl logs the run "
        "(exit 0 all ok, 1 some failed, 2 usage error, 3 fatal). Never writes over or inside IN. "
        "See docs/batch.md.",
    )
    parser.add_argument("input", metavar="IN", help="the degraded image, or a folder of images")
    parser.add_argument("-o", "--output", metavar="OUT", required=True,
                        help="the restored image (.png/.tif keep 16 bit), or the output folder")
    parser.add_argument("-d", "--degradation", default=None, metavar="SPEC",
                        help="what happened to IN, e.g. 'jpeg+noise+mask', or 'auto': estimate it (noise, JPEG "
                        "history, holes and scratches; see 'flowprior inspect'). Default: 'auto' for folders, the "
                        "recipe's for a file")
    parser.add_argument("--mask", metavar="M", default=None,
                        help="mask image of missing pixels: nonzero (white) = observed, 0 (black) = missing "
                        "(folders: each file's sibling STEM.mask.png is used)")
    parser.add_argument("--invert-mask", action="store_true", help="flip the mask: nonzero = missing")
    parser.add_argument("--recipe", metavar="R", default="auto",
                        help="a restore recipe: a YAML path, a name in recipes/restore, or 'auto' (default): the "
                        "recipe tuned for the degradation (noise, jpeg, inpaint, or default for combinations)")
    add_set_option(parser, "a recipe key (solver.weight=400) or an operator argument (jpeg.quality=30)")
    parser.add_argument("--steps", type=int, default=None, help="total optimizer steps (schedule rescaled)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the operator's parameter sampler")
    parser.add_argument("--init", default=None, help="warm start (default: the recipe's, 'identity')")
    parser.add_argument("--model", default=None, help="prior checkpoint path, or 'default' (embedded)")
    parser.add_argument("--params-from", metavar="SIDECAR", default=None,
                        help="replay the run recorded in an OUT.json sidecar bit for bit (recipe, seed, tiling, "
                        "mask, colour mode, strength)")
    fidelity = parser.add_argument_group("fidelity and review")
    fidelity.add_argument("--chroma", choices=("auto", "keep", "restore"), default=None,
                          help="keep: restore luminance only, keep the input's chroma (toned, sepia prints); "
                          "restore: restore colour; auto (default): keep for toned/monochrome images")
    fidelity.add_argument("--strength", type=float, default=None, metavar="S",
                          help="blend toward the input: 1 = restoration (default), 0 = input")
    fidelity.add_argument("--compare", action="store_true",
                          help="also write STEM.compare.png: input and restoration side by side")
    fidelity.add_argument("--quality", type=int, default=None, metavar="Q",
                          help="JPEG/WebP quality, for lossy outputs only")
    fidelity.add_argument("--samples", type=int, default=None, metavar="N",
                          help="also draw N posterior samples around the restoration (recipe section 'posterior', "
                          "--set posterior.KEY=V) and write STEM.std.png: the per-pixel standard deviation, 16-bit, "
                          "std = value / 131070; --compare shows it as a third panel")
    fidelity.add_argument("--save-samples", action="store_true",
                          help="with --samples: also write the samples, STEM.sample-00.png ...")
    batch = parser.add_argument_group("folders")
    batch.add_argument("--recursive", action="store_true", help="also restore the images in subfolders")
    batch.add_argument("--suffix", default="", help="added to every output stem (default: none)")
    batch.add_argument("--format", default="auto", choices=("auto", "png", "tif", "jpg", "webp"),
                       help="output format; auto (default): the input's when lossless (PNG, TIFF, lossless WebP), "
                       "else PNG")
    batch.add_argument("--overwrite", action="store_true",
                       help="replace outputs that exist (a file: the image, its sidecar and review image; a folder: "
                       "redo finished outputs); inputs are never written")
    batch.add_argument("--limit", type=int, default=None, metavar="N", help="restore at most N files (a sample)")
    batch.add_argument("--dry-run", action="store_true",
                       help="list the work with estimated time and peak memory; write nothing")
    batch.add_argument("--manifest", default=None, metavar="PATH",
                       help="JSON-lines run log (default OUT/flowprior-manifest.jsonl)")
    batch.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="local: one file after another (default); ray: spread files over a Ray cluster "
                       "(RAY_ADDRESS, else a local instance; pip install 'flowprior[ray]')")
    parser.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="bound peak memory, e.g. 4GiB: picks how many tiles are solved at once "
                        "(default: half the available memory)")
    parser.add_argument("--accept-truncated", action="store_true",
                        help="restore files whose data ends early (missing rows black) instead of refusing them")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads per file (default: torch's, i.e. the cores here); recorded in the "
                        "sidecar, and the same N gives the same bytes on every backend")
    parser.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                        help="bar: files and tiles (default); json: JSON lines on stderr; none")
    parser.add_argument("--quiet", action="store_true", help="no progress output (same as --progress none)")
    parser.set_defaults(handler=_run_restore)


def _run_restore(args: argparse.Namespace) -> int:
    from pathlib import Path

    from flowprior.restoration import find_restore_recipe, split_settings

    recipe_settings, operator_params = split_settings(parse_set_options(args.overrides))
    if args.degradation is None and Path(args.input).is_dir() and args.params_from is None:
        args.degradation = "auto"  # archives hold thousands of files whose damage nobody recorded
    recipe_path = None
    if args.params_from is None:
        recipe_path = find_restore_recipe(args.recipe, args.degradation or "jpeg+noise", init=args.init)
    elif args.recipe != "auto":
        raise UsageError("--params-from replays a recorded recipe; it cannot be combined with --recipe")
    progress = "none" if args.quiet else args.progress
    solve = {"degradation": args.degradation, "recipe": recipe_path, "settings": recipe_settings or None,
             "operator_params": operator_params or None, "steps": args.steps, "seed": args.seed, "init": args.init,
             "model": args.model, "chroma": args.chroma, "strength": args.strength, "quality": args.quality,
             "accept_truncated": args.accept_truncated, "threads": args.threads, "samples": args.samples,
             "save_samples": args.save_samples}
    from flowprior.batch import memory_planner, parse_size

    max_memory = None if args.max_memory is None else parse_size(args.max_memory)
    if Path(args.input).is_dir():
        return _run_restore_folder(args, solve, progress, max_memory)
    folder_only = [flag for flag, on in (("--recursive", args.recursive), ("--suffix", args.suffix),
                                          ("--format", args.format != "auto"),
                                          ("--limit", args.limit is not None), ("--dry-run", args.dry_run),
                                          ("--manifest", args.manifest), ("--backend", args.backend != "local"))
                   if on]
    if folder_only:
        raise UsageError(f"{', '.join(folder_only)} only work when IN is a folder; {args.input} is a file")
    from flowprior.restore_file import restore_file

    sidecar = restore_file(args.input, args.output, mask=args.mask, invert_mask=args.invert_mask,
                           progress=progress == "bar", compare=args.compare, params_from=args.params_from,
                           memory_planner=memory_planner(max_memory), overwrite=args.overwrite, **solve)
    for note in sidecar["warnings"]:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    seconds = sidecar["timings_s"]["total"]
    std = f", {sidecar['posterior']['std']['path']}" if sidecar.get("posterior") else ""
    print(f"wrote {args.output}{std} and {args.output}.json ({sidecar['tiles']['count']} tiles, {seconds:.1f} s)")
    return 0


def _run_restore_folder(args: argparse.Namespace, solve: dict, progress: str, max_memory: int | None) -> int:
    from pathlib import Path

    from flowprior.batch import BatchOptions, run_batch

    if args.mask is not None or args.invert_mask:
        raise UsageError("--mask is for one file; in a folder each image's sibling STEM.mask.png is its mask")
    options = BatchOptions(recursive=args.recursive, suffix=args.suffix, format=args.format,
                           overwrite=args.overwrite, limit=args.limit, dry_run=args.dry_run, progress=progress,
                           manifest=None if args.manifest is None else Path(args.manifest), max_memory=max_memory,
                           backend=args.backend)
    summary = run_batch(args.input, args.output, options, {**solve, "compare": args.compare,
                                                            "params_from": args.params_from})
    if args.dry_run:
        return 0
    print(f"restored {len(summary.restored)}, skipped {len(summary.skipped)} (already done), "
          f"failed {len(summary.failed)} in {summary.seconds:.1f} s")
    for source, message in summary.failed:
        print(f"  failed: {source}: {message}", file=sys.stderr)
    if summary.fatal:
        print(f"{PROG}: fatal: {summary.fatal}; the batch stopped (rerun to resume)", file=sys.stderr)
    return summary.exit_code


# ------------------------------------------------------------------------------------------------- inspect


def add_inspect_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="estimate an image's damage: noise sigma, JPEG history, defects",
        description="Estimate, from each image alone, its noise sigma per channel (0-255 scale), its JPEG "
        "history (a JPEG file's own tables, subsampling and IJG quality; for other files the 8x8 grid and "
        "quality read from the pixels) and its defects (dark-filled holes and scratches), and the operator "
        "spec these compose into. See docs/benchmarks.md, 'Degradation estimation'.",
    )
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image instead of text")
    parser.add_argument("--save-mask", nargs="?", const="", default=None, metavar="DIR",
                        help="write STEM.estimated-mask.png (255 = observed, 0 = missing) into DIR "
                        "(default: beside each image)")
    parser.set_defaults(handler=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from flowprior.estimate.cli_report import inspect_file, render_text

    for path in args.images:
        found = inspect_file(path, save_mask=args.save_mask)
        print(json.dumps(found) if args.json else render_text(found))
    return 0


# ------------------------------------------------------------------------------------------------------ main

COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_degrade_parser, add_restore_parser, add_metrics_parser, add_inspect_parser, add_train_parser,
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
