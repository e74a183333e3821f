"""Progress that suits where it is shown: a live bar in a terminal, plain lines in CI and log files."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
log = logging.getLogger("xai")


def interactive() -> bool:
    """True when a person watches a terminal (not CI, not a pipe, not a batch job)."""
    return sys.stderr.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a rich bar in a terminal; elsewhere log a line at start, every 25 % and at the end."""
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)  # type: ignore[arg-type]
    if interactive():
        from rich.progress import track as rich_track

        yield from rich_track(items, description=description, total=total, transient=True)
        return
    start, marks = time.perf_counter(), set()
    log.info("%s: started%s", description, f" ({total} steps)" if total else "")
    for i, item in enumerate(items, 1):
        yield item
        if total:
            quarter = (4 * i) // total
            if quarter not in marks and quarter < 4 and quarter > 0:
                marks.add(quarter)
                log.info("%s: %d/%d (%.1f s)", description, i, total, time.perf_counter() - start)
    log.info("%s: done in %.1f s", description, time.perf_counter() - start)
