"""Processing one source file into a corpus sound: decode, trim, hash, describe, write.

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
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurorack.atomic import atomic_path
from neurorack.audio_io import AUDIO_EXTENSIONS, is_audio_path, read_audio, resample, write_audio
from neurorack.corpus.manifest import audio_relpath, descriptors_relpath
from neurorack.descriptors import describe
from neurorack.errors import AudioError, NeurorackError

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
