"""The run log: ``OUTPUT_DIR/flowprior-manifest.jsonl``, appended (fsync per line) with ``run_start``, one ``file``
event per input and ``run_end``; every run has a ``run_id``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

MANIFEST_NAME = "flowprior-manifest.jsonl"


class ManifestError(OSError):
    """The manifest could not be written (disk full, I/O error, ...): the batch must stop (exit code 3)."""


class Manifest:
    """Append-only JSON lines; each line is flushed and fsynced, so a kill loses at most the line being written."""

    def __init__(self, path: Path, run_id: str):
        self.path, self.run_id = path, run_id

    def write(self, event: str, **fields: Any) -> None:
        """Append one event.

        Raises:
            ManifestError: the line could not be written (the message names the manifest and the reason).
        """
        line = json.dumps({"event": event, "run_id": self.run_id, "time": time.time(), **fields}, default=str)
        try:
            with open(self.path, "ab") as handle:
                if handle.tell() and not _ends_with_newline(self.path):
                    handle.write(b"\n")  # a previous run was killed mid-line: keep this line parseable
                handle.write(line.encode() + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise ManifestError(f"cannot write the manifest {self.path}: {error.strerror or error}") from error


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """The events of a manifest, skipping a line that a killed run left incomplete."""
    events = []
    for line in Path(path).read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
