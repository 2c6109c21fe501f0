"""Rich progress bars with ETA on stderr, for the long jobs (corpus builds, note renders)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, *, label: str, unit: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A bar ``label ━━━ done/total unit elapsed eta``; yields a function advancing it by ``n``."""
    if not enabled:

        def nothing(n: int = 1) -> None:
            pass

        yield nothing
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task_id = bar.add_task(label, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task_id, n)

        yield advance
