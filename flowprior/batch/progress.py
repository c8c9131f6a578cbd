"""Per-file progress of a batch: a tqdm bar, JSON lines on stderr, or nothing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from flowprior.batch.plan import WorkItem


class Reporter:
    """The file bar (the tile bar is restore_tensor's), JSON progress lines on stderr, or nothing."""

    def __init__(self, mode: str, todo: list[WorkItem], echo: Callable[[str], None]):
        from tqdm import tqdm

        self.mode, self.total, self.index, self.seconds = mode, len(todo), 0, 0.0
        self.bar = tqdm(
            total=len(todo), desc="files", unit="file", position=0, disable=mode != "bar", dynamic_ncols=True
        )

    def start(self, item: WorkItem) -> None:
        self.index += 1
        if self.mode == "json":
            self._json(event="file_start", index=self.index, total=self.total, input=str(item.source))
        self.bar.set_postfix_str(str(item.relative), refresh=True)

    def end(self, item: WorkItem, status: str, seconds: float, error: str | None = None) -> None:
        self.seconds += seconds
        eta = self.seconds / self.index * (self.total - self.index)
        if self.mode == "json":
            self._json(
                event="file_end",
                index=self.index,
                total=self.total,
                input=str(item.source),
                status=status,
                seconds=round(seconds, 3),
                eta_s=round(eta, 1),
                error=error,
            )
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()

    @staticmethod
    def _json(**fields: Any) -> None:
        print(json.dumps(fields), file=sys.stderr, flush=True)
