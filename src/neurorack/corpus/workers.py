"""Running :func:`~neurorack.corpus.process.process_source` over many files in a pool of worker processes."""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from neurorack.corpus.process import SourceOutcome, SourceTask, process_source


def _init_worker() -> None:
    """Worker set-up: one torch thread per process, Ctrl-C handled by the parent only."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)


def run_tasks(tasks: list[SourceTask], jobs: int, on_outcome: Callable[[SourceOutcome], None]) -> None:
    """Process ``tasks`` in ``jobs`` spawned processes (or in this process when ``jobs == 1``).

    A task that kills its worker process (a decoder crash) is retried alone and then
    recorded as skipped, so it cannot take the rest of the build down with it.
    """
    if not tasks:
        return
    if jobs <= 1:
        for task in tasks:
            on_outcome(process_source(task))
        return
    suspects: list[SourceTask] = []
    with _pool(jobs) as pool:
        futures: dict[Future[SourceOutcome], SourceTask] = {pool.submit(process_source, t): t for t in tasks}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool:
                suspects.append(futures[future])
                continue
            on_outcome(outcome)
    _isolate(suspects, on_outcome)


def _isolate(tasks: list[SourceTask], on_outcome: Callable[[SourceOutcome], None]) -> None:
    """Run tasks one at a time in a single worker; a task that breaks it is skipped as a crash."""
    remaining = list(tasks)
    while remaining:
        with _pool(1) as pool:
            while remaining:
                task = remaining[0]
                try:
                    outcome = pool.submit(process_source, task).result()
                except BrokenProcessPool:
                    remaining.pop(0)
                    on_outcome(SourceOutcome(task.path, kind="crash", reason="crash: the decoder crashed on this file"))
                    break
                remaining.pop(0)
                on_outcome(outcome)


@contextmanager
def _pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    # spawn, not fork: the parent may already run torch/OpenMP threads, which do not survive a fork
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
