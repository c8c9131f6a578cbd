"""One planned file: restore it (its own problems become a ``failed`` outcome) and record the outcome."""

from __future__ import annotations

import copy
import errno
import os
import socket
import time
import traceback
from typing import Any

from flowprior.batch.manifest import Manifest
from flowprior.batch.memory import peak_rss
from flowprior.batch.options import BatchSummary
from flowprior.batch.plan import WorkItem
from flowprior.restore_file import restore_file

_FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO})


def restore_item(item: WorkItem, recipe, prior, kwargs: dict[str, Any], planner, progress: bool) -> dict[str, Any]:
    """Restore one planned file; the file's own problems are returned as a ``failed`` outcome, never raised.

    Returns:
        The manifest fields: ``status`` (``restored``/``failed``), ``seconds``; restored: ``input_sha256``,
        ``output_sha256``, ``tiles``, ``warnings``, ``process_peak_rss`` (bytes: the peak RSS of the process that
        restored it, since that process started - the high-water mark over this file and every file before it in
        that process, not this file's own peak), ``host`` and ``pid`` (who did it); failed
        (:func:`failure`): ``error``, ``error_type``, ``fatal`` (disk full, read-only volume: the batch must stop)
        and ``traceback`` for unexpected errors.
    """
    clock = time.perf_counter()
    try:
        item.target.parent.mkdir(parents=True, exist_ok=True)
        # overwrite: the plan already decided that this target is ours to (re)write (restore, redo, --overwrite)
        sidecar = restore_file(item.source, item.target, recipe=copy.deepcopy(recipe), prior=prior, mask=item.mask,
                               progress=progress, memory_planner=planner, overwrite=True, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # noqa: BLE001 - one bad file must not stop the batch; the manifest keeps details
        expected = isinstance(error, (OSError, ValueError))  # the user's side; anything else keeps its traceback
        return failure(" ".join(str(error).split()) or type(error).__name__, type(error).__name__,
                       seconds=round(time.perf_counter() - clock, 3),
                       fatal=isinstance(error, OSError) and error.errno in _FATAL_ERRNOS,
                       trace=None if expected else traceback.format_exc())
    return {"status": "restored", "seconds": round(time.perf_counter() - clock, 3),
            "input_sha256": sidecar["input"]["sha256"], "output_sha256": sidecar["output"]["sha256"],
            "tiles": sidecar["tiles"]["count"], "warnings": sidecar["warnings"],
            "process_peak_rss": peak_rss(),
            "host": socket.gethostname(), "pid": os.getpid()}


def failure(error: str, error_type: str, *, seconds: float = 0.0, fatal: bool = False,
            trace: str | None = None) -> dict[str, Any]:
    """The outcome of a file that was not restored (``fatal``: the batch must stop; ``trace``: a traceback)."""
    return {"status": "failed", "error": error, "error_type": error_type, "seconds": seconds, "fatal": fatal,
            "traceback": trace}


def record(item: WorkItem, outcome: dict[str, Any], manifest: Manifest, report, summary: BatchSummary) -> None:
    """Log one file's outcome: a manifest line, the summary lists (a fatal failure stops the batch), the progress."""
    manifest.write("file", input=str(item.source), output=str(item.target), **outcome)
    if outcome["status"] == "restored":
        summary.restored.append(str(item.source))
    else:
        summary.failed.append((str(item.source), outcome["error"]))
        if outcome["fatal"] and not summary.fatal:
            summary.fatal = f"{item.target}: {outcome['error']}"
    report.end(item, outcome["status"], outcome["seconds"], outcome.get("error"))
