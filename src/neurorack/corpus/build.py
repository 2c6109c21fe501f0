"""Building a corpus: folders of one-shots -> trimmed mono audio, descriptors and a manifest.

Pipeline per source file (in a worker process, :func:`process_source`):

1. decode with :func:`neurorack.audio_io.read_audio` (mono, native rate); refuse empty,
   unreadable, NaN-containing and silent (peak < -80 dBFS) files;
2. resample to the corpus rate with soxr (VHQ);
3. :func:`trim` -- drop the silence before the onset (first sample within 40 dB of the
   peak, 5 ms pre-roll kept) and after the tail (last sample within 60 dB of the peak,
   5 ms post-roll kept), cap the length with a 10 ms half-cosine fade-out; levels are kept;
4. refuse what is shorter than ``min_seconds`` now;
5. hash (:func:`sound_hash`), compute the descriptors, and write both content-addressed files
   atomically (identical content, so concurrent writers of the same sound are harmless).

The main process scans the sources, skips those whose (path, size, mtime_ns) did not
change since the last run, deduplicates by hash and records everything in the manifest,
in transactions. Source files are only ever opened for reading.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import multiprocessing
import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from neurorack.atomic import atomic_path
from neurorack.audio_io import AUDIO_EXTENSIONS, is_audio_path, read_audio, resample, write_audio
from neurorack.corpus.licences import LicenceFinder
from neurorack.corpus.manifest import (
    CORPUS_FORMAT,
    CORPUS_JSON,
    CORPUS_VERSION,
    MANIFEST_FILE,
    SPLITS,
    audio_relpath,
    config_from_meta,
    connect_manifest,
    descriptors_relpath,
    read_corpus_json,
    split_for,
    write_json_atomic,
)
from neurorack.descriptors import DescriptorConfig, describe
from neurorack.errors import AudioError, CorpusError, NeurorackError

#: Onset: first sample whose magnitude is within this many dB of the peak.
ONSET_DB = -40.0
#: Tail: last sample whose magnitude is within this many dB of the peak.
TAIL_DB = -60.0
#: Files whose peak is below this level (dBFS) are skipped as silent.
SILENCE_DBFS = -80.0
#: Audio kept before the onset and after the tail, in seconds.
PRE_ROLL_SECONDS = 0.005
POST_ROLL_SECONDS = 0.005
#: Fade-out applied where the length cap cuts a sound, in seconds.
FADE_SECONDS = 0.010
#: At most ``max_seconds`` plus this much is decoded from each file (leading silence allowance), seconds.
MAX_LEADING_SECONDS = 30.0

_BATCH_SIZE = 32
_BATCH_SECONDS = 2.0


# -- signal processing ----------------------------------------------------------------------------


def db_to_amplitude(db: float) -> float:
    """Linear amplitude of a level in dB (0 dB = 1)."""
    return float(10.0 ** (db / 20.0))


def amplitude_to_db(amplitude: float) -> float:
    """Level in dB of a linear amplitude (``-inf`` for 0)."""
    return 20.0 * math.log10(amplitude) if amplitude > 0 else -math.inf


def trim(audio: np.ndarray, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Onset- and tail-trim a one-shot and cap its length; levels are kept.

    Args:
        audio: float32 ``[T]`` mono.
        sample_rate: Hz.
        max_seconds: length cap in seconds; a sound cut by the cap gets a 10 ms half-cosine fade-out.

    Returns:
        float32 ``[T']`` (empty when ``audio`` is all zeros).
    """
    x = np.asarray(audio, dtype=np.float32)
    magnitude = np.abs(x)
    peak = float(magnitude.max()) if x.size else 0.0
    if peak <= 0.0:
        return x[:0].copy()
    onset = int(np.argmax(magnitude >= peak * db_to_amplitude(ONSET_DB)))
    tail = x.size - 1 - int(np.argmax(magnitude[::-1] >= peak * db_to_amplitude(TAIL_DB)))
    start = max(0, onset - round(PRE_ROLL_SECONDS * sample_rate))
    end = min(x.size, tail + 1 + round(POST_ROLL_SECONDS * sample_rate))
    out = x[start:end].copy()
    cap = max(1, round(max_seconds * sample_rate))
    if out.size > cap:
        out = out[:cap].copy()
        n_fade = min(cap, max(2, round(FADE_SECONDS * sample_rate)))
        ramp = 0.5 * (1.0 + np.cos(np.pi * np.arange(n_fade) / (n_fade - 1)))
        out[-n_fade:] *= ramp.astype(np.float32)
    return out


def sound_hash(audio: np.ndarray) -> str:
    """SHA-256 (hex) of ``audio`` quantised to 16 bit (clipped to full scale, little-endian)."""
    quantised = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")
    return hashlib.sha256(quantised.tobytes()).hexdigest()


# -- per-file processing (runs in worker processes) -----------------------------------------------


@dataclass(frozen=True)
class SourceTask:
    """What a worker needs to process one source file (picklable)."""

    path: str
    out: str
    sample_rate: int
    max_seconds: float
    min_seconds: float
    frame_length: int
    hop_length: int


@dataclass(frozen=True)
class SourceOutcome:
    """The result of processing one source: a sound (``hash`` set) or a skip (``kind`` set).

    ``duration`` is in seconds, ``samples`` at the corpus rate, ``peak`` linear.
    """

    path: str
    hash: str = ""
    kind: str = ""
    reason: str = ""
    duration: float = 0.0
    samples: int = 0
    frames: int = 0
    peak: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.kind


class _SkipError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def process_source(task: SourceTask) -> SourceOutcome:
    """Decode, trim, hash and describe one file, writing its audio and descriptors into the corpus.

    Never raises for a bad file: the outcome then carries a skip ``kind`` and a one-line ``reason``.
    """
    try:
        return _process(task)
    except _SkipError as skip:
        return SourceOutcome(task.path, kind=skip.kind, reason=f"{skip.kind}: {skip.detail}")
    except NeurorackError as exc:
        detail = _strip_path(str(exc), task.path)
        return SourceOutcome(task.path, kind="error", reason=f"error: {detail}")
    except MemoryError:
        return SourceOutcome(task.path, kind="error", reason="error: out of memory while decoding")
    except Exception as exc:  # one bad file must never abort a build
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return SourceOutcome(task.path, kind="error", reason=f"error: {type(exc).__name__}: {first}")


def _process(task: SourceTask) -> SourceOutcome:
    path = Path(task.path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _SkipError("unreadable", f"cannot stat file ({exc.strerror or exc})") from None
    if size == 0:
        raise _SkipError("empty", "empty file (0 bytes)")
    if not is_audio_path(path):
        exts = ", ".join(sorted(AUDIO_EXTENSIONS))
        raise _SkipError("not audio", f"unsupported extension {path.suffix or '(none)'!r} (expected one of {exts})")
    try:
        audio, sr = read_audio(path, max_seconds=task.max_seconds + MAX_LEADING_SECONDS)
    except AudioError as exc:
        message = _strip_path(str(exc), task.path)
        raise _SkipError("non-finite" if "NaN or infinite" in message else "unreadable", message) from None
    peak_in = float(np.abs(audio).max()) if audio.size else 0.0
    if peak_in < db_to_amplitude(SILENCE_DBFS):
        raise _SkipError("silent", f"peak {amplitude_to_db(peak_in):.1f} dBFS is below {SILENCE_DBFS:.0f} dBFS")
    audio = trim(resample(audio, sr, task.sample_rate), task.sample_rate, task.max_seconds)
    duration = audio.size / task.sample_rate
    if duration < task.min_seconds:
        raise _SkipError("too short", f"{duration:.3f} s after trimming (minimum {task.min_seconds:g} s)")
    digest = sound_hash(audio)
    descriptors = describe(audio, task.sample_rate, frame_length=task.frame_length, hop_length=task.hop_length)
    out = Path(task.out)
    audio_path = out / audio_relpath(digest)
    if not audio_path.is_file():
        write_audio(audio_path, audio, task.sample_rate)
    npy_path = out / descriptors_relpath(digest)
    if not npy_path.is_file():
        save_npy_atomic(npy_path, descriptors)
    return SourceOutcome(
        task.path,
        hash=digest,
        duration=duration,
        samples=int(audio.size),
        frames=int(descriptors.shape[0]),
        peak=float(np.abs(audio).max()),
    )


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """``np.save`` via a temporary file and an atomic rename."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def _strip_path(message: str, path: str) -> str:
    """``"<path>: detail"`` -> ``"detail"`` (audio_io prefixes messages with the path)."""
    prefix = f"{path}: "
    text = message[len(prefix) :] if message.startswith(prefix) else message
    text = text.replace(f"Error opening {path!r}: ", "")  # libsndfile repeats the path
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def _init_worker() -> None:
    """Worker set-up: one torch thread per process, Ctrl-C handled by the parent only."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)


# -- scanning -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A source file found by :func:`scan_sources`: absolute path, stat, folder label, licence."""

    path: str
    size: int
    mtime_ns: int
    label: str
    licence: str


def scan_sources(
    sources: Sequence[str | os.PathLike[str]], exclude: Path | None = None
) -> tuple[list[Candidate], list[str]]:
    """List the source files of a build.

    Folders are walked recursively (hidden files and folders, and ``exclude``, left out) for
    files with an audio extension; files given explicitly are always candidates.

    Returns:
        ``(candidates, roots)``: candidates in argument order, each folder's files sorted;
        ``roots`` are the absolute folders that were walked.

    Raises:
        CorpusError: no sources, a source that does not exist, or a folder without audio files.
    """
    if not sources:
        raise CorpusError("no sources given: pass folders or files of audio to build a corpus from")
    seen: set[str] = set()
    candidates: list[Candidate] = []
    roots: list[str] = []
    exclude_abs = os.path.abspath(exclude) if exclude is not None else None
    for source in sources:
        src = Path(os.path.abspath(source))
        if not src.exists():
            raise CorpusError(f"{source}: no such file or folder")
        if src.is_dir():
            files = _walk_audio(src, exclude_abs)
            if not files:
                exts = ", ".join(sorted(AUDIO_EXTENSIONS))
                raise CorpusError(f"{source}: contains no audio files (looked for {exts})")
            roots.append(str(src))
            finder = LicenceFinder(src)
        else:
            files = [src]
            finder = LicenceFinder(src.parent)
        for file in files:
            key = str(file)
            if key in seen:
                continue
            seen.add(key)
            try:
                st = file.stat()
                size, mtime_ns = int(st.st_size), int(st.st_mtime_ns)
            except OSError:
                size, mtime_ns = -1, -1
            label = file.parent.name or src.name
            candidates.append(Candidate(key, size, mtime_ns, label, finder.licence_for(file)))
    return candidates, roots


def _walk_audio(root: Path, exclude: str | None) -> list[Path]:
    found: list[Path] = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and os.path.join(folder, d) != exclude)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            if is_audio_path(path) and (path.is_file()):
                found.append(path)
    return found


# -- the build ------------------------------------------------------------------------------------


@dataclass
class BuildReport:
    """What a build did.

    Counts are over the source files of this run and add up to ``sources``:
    ``added + duplicates + newly_skipped + refreshed + unchanged``.

    Attributes:
        out: the corpus folder.
        sources: source files considered.
        added: new sounds.
        duplicates: sources whose sound was already in the corpus (recorded, not stored twice).
        newly_skipped: sources processed in this run and skipped.
        refreshed: changed sources that gave the same sound as before.
        unchanged: sources not reprocessed (same path, size and mtime as last time).
        removed: sources recorded under a scanned folder that no longer exist there.
        sounds: sounds in the corpus after the build.
        splits: sounds per split after the build.
        skipped: ``(source path, reason)`` of every scanned source currently skipped (this run or before).
        reasons: skip kind -> count, over ``skipped``.
        seconds: wall-clock duration.
        jobs: worker processes used (1 = in-process).
    """

    out: Path
    sources: int = 0
    added: int = 0
    duplicates: int = 0
    newly_skipped: int = 0
    refreshed: int = 0
    unchanged: int = 0
    removed: int = 0
    sounds: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    jobs: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings, skipped as ``{"path", "reason"}`` objects)."""
        data = asdict(self)
        data["out"] = str(self.out)
        data["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        data["seconds"] = round(self.seconds, 3)
        return data


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
    with _exclusive_lock(out_dir):
        conn = connect_manifest(out_dir / MANIFEST_FILE)
        try:
            builder = _Builder(conn, out_dir, report)
            todo = builder.plan(candidates, roots)
            tasks = [
                SourceTask(c.path, str(out_dir), sample_rate, max_seconds, min_seconds, frame_length, hop_length)
                for c in todo
            ]
            by_path = {c.path: c for c in todo}
            used_jobs = min(n_jobs, len(tasks)) if tasks else 1
            report.jobs = used_jobs
            with _progress_bar(len(tasks), enabled=progress and bool(tasks)) as advance:

                def on_outcome(outcome: SourceOutcome) -> None:
                    builder.record(by_path[outcome.path], outcome)
                    advance()

                try:
                    _run_tasks(tasks, used_jobs, on_outcome)
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
            "created": _now(),
        },
    )


@contextmanager
def _exclusive_lock(out: Path) -> Iterator[None]:
    with (out / ".lock").open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CorpusError(f"{out}: another `neurorack corpus build` is writing to this corpus") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Builder:
    """Applies outcomes to the manifest (main process only), in batched transactions."""

    def __init__(self, conn: sqlite3.Connection, out: Path, report: BuildReport) -> None:
        self.conn = conn
        self.out = out
        self.report = report
        self.pending: list[tuple[Candidate, SourceOutcome]] = []
        self.last_flush = time.monotonic()
        self.orphans: set[str] = set()

    # planning ------------------------------------------------------------------------------
    def plan(self, candidates: list[Candidate], roots: list[str]) -> list[Candidate]:
        """Release vanished sources, refresh labels/licences of unchanged ones; return what to process."""
        rows = {
            path: (size, mtime_ns, status, digest, label, licence)
            for path, size, mtime_ns, status, digest, label, licence in self.conn.execute(
                "SELECT path, size, mtime_ns, status, hash, label, licence FROM sources"
            )
        }
        current = {c.path for c in candidates}
        todo: list[Candidate] = []
        with self.conn:
            prefixes = tuple(root.rstrip(os.sep) + os.sep for root in roots)
            for path in rows:
                if path not in current and prefixes and path.startswith(prefixes):
                    self._release(path)
                    self.report.removed += 1
            for cand in candidates:
                row = rows.get(cand.path)
                if row is None or cand.size < 0 or (row[0], row[1]) != (cand.size, cand.mtime_ns):
                    todo.append(cand)
                    continue
                status, digest = row[2], row[3]
                if status != "skipped" and not self._files_present(digest):
                    todo.append(cand)
                    continue
                self.report.unchanged += 1
                if (row[4], row[5]) != (cand.label, cand.licence):
                    self.conn.execute(
                        "UPDATE sources SET label = ?, licence = ? WHERE path = ?",
                        (cand.label, cand.licence, cand.path),
                    )
                    self.conn.execute(
                        "UPDATE sounds SET label = ?, licence = ? WHERE source = ?",
                        (cand.label, cand.licence, cand.path),
                    )
        return todo

    def _files_present(self, digest: str | None) -> bool:
        return bool(digest) and (
            (self.out / audio_relpath(str(digest))).is_file()
            and (self.out / descriptors_relpath(str(digest))).is_file()
        )

    # recording -----------------------------------------------------------------------------
    def record(self, cand: Candidate, outcome: SourceOutcome) -> None:
        self.pending.append((cand, outcome))
        if len(self.pending) >= _BATCH_SIZE or time.monotonic() - self.last_flush > _BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            with self.conn:
                for cand, outcome in self.pending:
                    self._apply(cand, outcome)
            self.pending.clear()
        self.last_flush = time.monotonic()

    def _apply(self, cand: Candidate, outcome: SourceOutcome) -> None:
        now = _now()
        previous = self._release(cand.path)
        if not outcome.ok:
            self.conn.execute(
                "INSERT INTO sources (path, size, mtime_ns, status, hash, kind, reason, label, licence, updated) "
                "VALUES (?, ?, ?, 'skipped', NULL, ?, ?, ?, ?, ?)",
                (cand.path, cand.size, cand.mtime_ns, outcome.kind, outcome.reason, cand.label, cand.licence, now),
            )
            self.report.newly_skipped += 1
            return
        digest = outcome.hash
        owner = self.conn.execute("SELECT source FROM sounds WHERE hash = ?", (digest,)).fetchone()
        status, reason = "ok", ""
        if owner is None:
            self.conn.execute(
                "INSERT INTO sounds (hash, split, source, duration, samples, frames, label, licence, peak, added) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    digest,
                    split_for(digest),
                    cand.path,
                    outcome.duration,
                    outcome.samples,
                    outcome.frames,
                    cand.label,
                    cand.licence,
                    outcome.peak,
                    now,
                ),
            )
        elif cand.path < owner[0]:
            # the smallest path owns a sound, so the result does not depend on completion order
            self.conn.execute(
                "UPDATE sounds SET source = ?, label = ?, licence = ? WHERE hash = ?",
                (cand.path, cand.label, cand.licence, digest),
            )
            self.conn.execute(
                "UPDATE sources SET status = 'duplicate', reason = ? WHERE path = ?",
                (_duplicate_reason(digest), owner[0]),
            )
        else:
            status, reason = "duplicate", _duplicate_reason(digest)
        self.conn.execute(
            "INSERT INTO sources (path, size, mtime_ns, status, hash, kind, reason, label, licence, updated) "
            "VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?)",
            (cand.path, cand.size, cand.mtime_ns, status, digest, reason, cand.label, cand.licence, now),
        )
        if previous == digest:
            self.report.refreshed += 1
        elif owner is None:
            self.report.added += 1
        else:
            self.report.duplicates += 1

    def _release(self, path: str) -> str | None:
        """Forget a source; its sound passes to a duplicate or is removed. Returns the source's old hash."""
        row = self.conn.execute("SELECT status, hash FROM sources WHERE path = ?", (path,)).fetchone()
        if row is None:
            return None
        status, digest = row
        self.conn.execute("DELETE FROM sources WHERE path = ?", (path,))
        if status != "ok" or not digest:
            return str(digest) if digest else None
        heir = self.conn.execute(
            "SELECT path, label, licence FROM sources WHERE hash = ? AND status = 'duplicate' ORDER BY path LIMIT 1",
            (digest,),
        ).fetchone()
        if heir is None:
            self.conn.execute("DELETE FROM sounds WHERE hash = ?", (digest,))
            self.orphans.add(str(digest))
        else:
            self.conn.execute("UPDATE sounds SET source = ?, label = ?, licence = ? WHERE hash = ?", (*heir, digest))
            self.conn.execute("UPDATE sources SET status = 'ok', reason = '' WHERE path = ?", (heir[0],))
        return str(digest)

    # finishing -----------------------------------------------------------------------------
    def delete_orphans(self) -> None:
        """Delete the files of sounds no source refers to any more (after every outcome is applied)."""
        for digest in sorted(self.orphans):
            if self.conn.execute("SELECT 1 FROM sounds WHERE hash = ?", (digest,)).fetchone():
                continue
            for rel in (audio_relpath(digest), descriptors_relpath(digest)):
                (self.out / rel).unlink(missing_ok=True)

    def summarise(self, candidates: list[Candidate]) -> None:
        report = self.report
        report.sounds = int(self.conn.execute("SELECT COUNT(*) FROM sounds").fetchone()[0])
        counts = dict(self.conn.execute("SELECT split, COUNT(*) FROM sounds GROUP BY split").fetchall())
        report.splits = {name: int(counts.get(name, 0)) for name in SPLITS}
        wanted = {c.path for c in candidates}
        rows = self.conn.execute(
            "SELECT path, kind, reason FROM sources WHERE status = 'skipped' ORDER BY path"
        ).fetchall()
        skipped = [(p, k, r) for p, k, r in rows if p in wanted]
        report.skipped = [(p, r) for p, _, r in skipped]
        report.reasons = dict(Counter(k for _, k, _ in skipped).most_common())


def _duplicate_reason(digest: str) -> str:
    return f"duplicate of sound {digest[:16]}"


# -- running the workers --------------------------------------------------------------------------


def _run_tasks(tasks: list[SourceTask], jobs: int, on_outcome: Callable[[SourceOutcome], None]) -> None:
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


@contextmanager
def _progress_bar(total: int, *, enabled: bool) -> Iterator[Callable[[], None]]:
    """A rich progress bar with ETA on stderr; yields a function advancing it by one file."""
    if not enabled:
        yield lambda: None
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
        TextColumn("[bold]building corpus"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task_id = bar.add_task("build", total=total)
        yield lambda: bar.advance(task_id)
