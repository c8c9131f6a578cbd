"""What a batch run is asked to do (:class:`BatchOptions`) and what it did (:class:`BatchSummary`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_FATAL = 0, 1, 2, 3
PROGRESS_MODES = ("bar", "json", "none")


@dataclass
class BatchOptions:
    """How to walk, name, resume and report (the solve settings travel separately, as ``restore_file`` kwargs)."""

    recursive: bool = False
    suffix: str = ""
    format: str = "auto"
    overwrite: bool = False
    limit: int | None = None  # restore at most this many files (finished ones do not count)
    dry_run: bool = False
    progress: str = "bar"  # "bar" (files + tiles), "json" (JSON lines on stderr), "none"
    manifest: Path | None = None  # default OUTPUT_DIR/flowprior-manifest.jsonl
    max_memory: int | None = None  # bytes
    backend: str = "local"  # "local": one file after another here; "ray": files spread over a Ray cluster


@dataclass
class BatchSummary:
    """What a run did. ``exit_code``: 0 all ok, 1 some failed, 3 fatal."""

    run_id: str
    restored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input, message)
    planned: list[dict[str, Any]] = field(default_factory=list)  # dry run: one row per input
    fatal: str | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_FATAL if self.fatal else EXIT_SOME_FAILED if self.failed else EXIT_OK
