"""Building a corpus: folders of one-shots -> trimmed mono audio, descriptors and a manifest.

:func:`build_corpus` runs the build: it scans the sources (:mod:`~neurorack.corpus.scan`),
skips those whose (path, size, mtime_ns) did not change since the last run, processes the
others in worker processes (:mod:`~neurorack.corpus.process`, :mod:`~neurorack.corpus.workers`),
and deduplicates by hash and records everything in the manifest, in transactions
(:mod:`~neurorack.corpus.manifest_writer`). Source files are only ever opened for reading.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from neurorack.atomic import exclusive_lock
from neurorack.corpus.manifest import (
    CORPUS_FORMAT,
    CORPUS_JSON,
    CORPUS_VERSION,
    MANIFEST_FILE,
    config_from_meta,
    connect_manifest,
    read_corpus_json,
    write_json_atomic,
)
from neurorack.corpus.manifest_writer import ManifestWriter, utc_now
from neurorack.corpus.process import (
    FADE_SECONDS,
    ONSET_DB,
    POST_ROLL_SECONDS,
    PRE_ROLL_SECONDS,
    SILENCE_DBFS,
    TAIL_DB,
    SourceOutcome,
    SourceTask,
)
from neurorack.corpus.report import BuildReport
from neurorack.corpus.scan import scan_sources
from neurorack.corpus.workers import run_tasks
from neurorack.descriptors import DescriptorConfig
from neurorack.errors import CorpusError
from neurorack.progress import progress_bar


@dataclass(frozen=True)
class BuildSettings:
    """Processing settings of a corpus (all stored in ``corpus.json``); seconds and Hz."""

    sample_rate: int = 44_100
    max_seconds: float = 2.0
    min_seconds: float = 0.05
    frame_length: int = 2048
    hop_length: int = 512

    def validate(self) -> DescriptorConfig:
        """Check the settings; returns the descriptor config. Raises :class:`CorpusError`."""
        if not 0 < self.min_seconds <= self.max_seconds:
            raise CorpusError(
                f"need 0 < --min-seconds <= --max-seconds, got {self.min_seconds:g} and {self.max_seconds:g}"
            )
        if self.max_seconds > 600:
            raise CorpusError(f"--max-seconds {self.max_seconds:g} is too long for one-shots (at most 600)")
        try:
            return DescriptorConfig(
                sample_rate=self.sample_rate, frame_length=self.frame_length, hop_length=self.hop_length
            )
        except ValueError as exc:
            raise CorpusError(f"invalid analysis settings: {exc}") from None


def build_corpus(
    sources: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    sample_rate: int = 44_100,
    max_seconds: float = 2.0,
    min_seconds: float = 0.05,
    frame_length: int = 2048,
    hop_length: int = 512,
    jobs: int | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build or incrementally update the corpus in ``out`` from folders or files of audio.

    Args:
        sources: folders (walked recursively) and/or single audio files.
        out: corpus folder (created; must be new, empty, or a corpus built with the same settings).
        sample_rate: corpus sample rate in Hz.
        max_seconds: length cap per sound in seconds.
        min_seconds: sounds shorter than this after trimming are skipped, seconds.
        frame_length, hop_length: descriptor analysis frame and hop, samples.
        jobs: worker processes (default: CPUs available); 1 processes in this process.
        progress: show a progress bar on stderr.

    Returns:
        a :class:`BuildReport`.

    Raises:
        CorpusError: bad sources or settings, an ``out`` folder that is not a compatible corpus,
            or another build running on ``out``. Bad individual files never raise: they are skipped.
    """
    started = time.perf_counter()
    settings = BuildSettings(sample_rate, max_seconds, min_seconds, frame_length, hop_length)
    config = settings.validate()
    n_jobs = _default_jobs() if jobs is None else int(jobs)
    if n_jobs < 1:
        raise CorpusError(f"--jobs must be at least 1, got {jobs}")
    out_dir = Path(os.path.abspath(out))
    candidates, roots = scan_sources(sources, exclude=out_dir)
    _prepare_output(out_dir, settings, config)
    report = BuildReport(out=out_dir, sources=len(candidates))
    with exclusive_lock(out_dir, "`neurorack corpus build`"):
        conn = connect_manifest(out_dir / MANIFEST_FILE)
        try:
            builder = ManifestWriter(conn, out_dir, report)
            todo = builder.plan(candidates, roots)
            tasks = [
                SourceTask(c.path, str(out_dir), sample_rate, max_seconds, min_seconds, frame_length, hop_length)
                for c in todo
            ]
            by_path = {c.path: c for c in todo}
            used_jobs = min(n_jobs, len(tasks)) if tasks else 1
            report.jobs = used_jobs
            with progress_bar(
                len(tasks), label="building corpus", unit="files", enabled=progress and bool(tasks)
            ) as advance:

                def on_outcome(outcome: SourceOutcome) -> None:
                    builder.record(by_path[outcome.path], outcome)
                    advance(1)

                try:
                    run_tasks(tasks, used_jobs, on_outcome)
                finally:
                    builder.flush()  # keep what is done, even on Ctrl-C
            builder.delete_orphans()
            builder.summarise(candidates)
        finally:
            conn.close()
    report.seconds = time.perf_counter() - started
    return report


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _prepare_output(out: Path, settings: BuildSettings, config: DescriptorConfig) -> None:
    """Create ``out`` with its ``corpus.json``, or check an existing corpus has the same settings."""
    if out.exists() and not out.is_dir():
        raise CorpusError(f"--out {out}: exists and is not a folder")
    if (out / CORPUS_JSON).exists():
        meta = read_corpus_json(out)
        old = config_from_meta(meta)
        wanted = {
            "sample rate": (old.sample_rate, config.sample_rate),
            "frame length": (old.frame_length, config.frame_length),
            "hop length": (old.hop_length, config.hop_length),
            "max seconds": (meta.get("max_seconds"), settings.max_seconds),
            "min seconds": (meta.get("min_seconds"), settings.min_seconds),
        }
        diffs = [f"{name} {a} (asked {b})" for name, (a, b) in wanted.items() if a != b]
        if diffs:
            raise CorpusError(
                f"{out} was built with different settings: {', '.join(diffs)}; "
                "use a new --out folder for these settings"
            )
        return
    if out.is_dir() and any(out.iterdir()):
        raise CorpusError(f"--out {out}: folder exists, is not empty and is not a neurorack corpus; use a new folder")
    from neurorack import __version__

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        out / CORPUS_JSON,
        {
            "format": CORPUS_FORMAT,
            "version": CORPUS_VERSION,
            "descriptors": config.to_dict(),
            "sample_rate": settings.sample_rate,
            "max_seconds": settings.max_seconds,
            "min_seconds": settings.min_seconds,
            "trim": {
                "onset_db": ONSET_DB,
                "tail_db": TAIL_DB,
                "silence_dbfs": SILENCE_DBFS,
                "pre_roll_seconds": PRE_ROLL_SECONDS,
                "post_roll_seconds": POST_ROLL_SECONDS,
                "fade_seconds": FADE_SECONDS,
            },
            "hash": "sha256 of the processed audio quantised to 16 bit (little-endian int16)",
            "split": "int(hash[:8], 16) % 100: < 80 train, < 90 validation, else test",
            "neurorack_version": __version__,
            "created": utc_now(),
        },
    )
