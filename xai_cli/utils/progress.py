"""Progress that suits where it is shown: live bars in a terminal, plain lines in CI and log files.

In a terminal every loop, however deeply nested (an analysis over models, an explainer over images, a
fit over batches), is a task on one shared rich display: rich allows one live display at a time, and two
started independently corrupt each other's state (a consistency run in a terminal crashed that way when
Lightning's own bar started inside ours). Elsewhere the outermost loop logs its start, its quarters and its
end; a nested loop stays quiet unless it runs long enough that a silent console would look stuck.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

T = TypeVar("T")
log = logging.getLogger("xai")

# a nested loop in plain mode reports its quarters only once it has run this long
NESTED_QUIET_S = 10.0

Advance = Callable[..., None]


def interactive() -> bool:
    """True when a person watches a terminal (not CI, not a pipe, not a batch job)."""
    return sys.stderr.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


def snake_case(name: str) -> str:
    """"KernelShapExplainer" -> "kernel_shap": a class's name as the configs spell it."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Explainer")).lower()


class _Display:
    """The one live display of this process, started by its first task and stopped with its last."""

    progress: Progress | None = None
    tasks = 0

    @classmethod
    def console(cls) -> Console:
        return Console(stderr=True)

    @classmethod
    def add(cls, description: str, total: int | None) -> tuple[Progress, int]:
        if cls.progress is None:
            cls.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                    console=cls.console(), transient=True)
            cls.progress.start()
        cls.tasks += 1
        return cls.progress, cls.progress.add_task(description, total=total)

    @classmethod
    def remove(cls, task: int) -> None:
        progress = cls.progress
        assert progress is not None
        progress.refresh()  # draw the task's last state once: a short loop may end between two auto-refreshes
        progress.remove_task(task)
        cls.tasks -= 1
        if cls.tasks == 0:
            cls.progress = None
            progress.stop()


class _Lines:
    """Plain progress: log lines at the quarters; a nested loop only once it has run NESTED_QUIET_S."""

    open = 0  # plain loops running in this process, to tell the outermost from nested ones

    def __init__(self, description: str, total: int | None) -> None:
        self.description, self.total, self.done = description, total, 0
        self.nested = _Lines.open > 0
        self.start, self.marks, self.spoke = time.perf_counter(), set(), False
        if not self.nested:
            self._say("%s: started%s", description, f" ({total} steps)" if total else "")

    def _say(self, message: str, *args: object) -> None:
        self.spoke = True
        log.info(message, *args)

    def advance(self, n: int = 1, description: str | None = None) -> None:
        self.done += n
        if not self.total:
            return
        elapsed = time.perf_counter() - self.start
        quarter = (4 * self.done) // self.total
        if 0 < quarter < 4 and quarter not in self.marks and (not self.nested or elapsed >= NESTED_QUIET_S):
            self.marks.add(quarter)
            self._say("%s: %d/%d (%.1f s)", description or self.description, self.done, self.total, elapsed)

    def finish(self) -> None:
        if self.spoke:
            log.info("%s: done in %.1f s", self.description, time.perf_counter() - self.start)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Advance]:
    """A bar (or plain lines) for a loop the caller drives: yields `advance(n=1, description=None)`."""
    if interactive():
        progress, task = _Display.add(description, total)
        try:
            yield lambda n=1, description=None: progress.update(
                task, advance=n, **({"description": description} if description else {}))
        finally:
            _Display.remove(task)
        return
    lines = _Lines(description, total)
    _Lines.open += 1
    try:
        yield lines.advance
        lines.finish()
    finally:
        _Lines.open -= 1


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a bar in a terminal; elsewhere log a line at start, every 25 % and at the end."""
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)  # type: ignore[arg-type]
    with progress_bar(description, total) as advance:
        for item in items:
            yield item
            advance()
