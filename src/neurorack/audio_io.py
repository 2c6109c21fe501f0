"""Audio input/output, channel handling and resampling: the only module that touches audio files.

Reading goes through soundfile (libsndfile: WAV, FLAC, AIFF, OGG/Vorbis/Opus, MP3),
resampling through soxr (VHQ), writing is atomic (temporary file + rename) so
an interrupted run never leaves a half-written file behind.

Arrays are ``float32`` mono ``[T]`` in the range the file stores (levels are
kept: nothing is normalised here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from neurorack.atomic import atomic_path
from neurorack.errors import AudioError

#: File extensions read as audio (lower case, without the dot).
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {"wav", "wave", "flac", "aif", "aiff", "aifc", "ogg", "oga", "opus", "mp3"}
)

#: Sample rates outside this range are refused as implausible.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000


@dataclass(frozen=True)
class AudioInfo:
    """What a file header says, without decoding the samples."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


def is_audio_path(path: Path) -> bool:
    """True when the file name has an audio extension this module reads."""
    return path.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the header of an audio file.

    Raises:
        AudioError: missing, empty, unsupported or corrupt file (one-line message).
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    if not is_audio_path(p):
        raise AudioError(
            f"{p}: unsupported extension {p.suffix or '(none)'!r}; "
            f"expected one of {', '.join(sorted(AUDIO_EXTENSIONS))}"
        )
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: empty file (0 bytes)")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{p}: implausible sample rate {info.samplerate} Hz")
    if info.channels < 1:
        raise AudioError(f"{p}: no audio channels")
    return AudioInfo(p, int(info.samplerate), int(info.channels), int(info.frames), str(info.format))


def read_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    *,
    max_seconds: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32.

    Args:
        path: audio file (any extension in :data:`AUDIO_EXTENSIONS`).
        sample_rate: resample to this rate in Hz (soxr VHQ); ``None`` keeps the file's rate.
        max_seconds: read at most this many seconds from the start (before resampling).

    Returns:
        ``(audio, sr)`` with ``audio: float32[T]`` mono (channels averaged) and ``sr`` in Hz.

    Raises:
        AudioError: unreadable, empty or non-finite audio (one-line message).
    """
    info = probe(path)
    frames = -1
    if max_seconds is not None:
        frames = max(1, round(max_seconds * info.sample_rate))
    try:
        data, sr = sf.read(str(info.path), frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{info.path}: cannot decode audio ({_short(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{info.path}: contains no samples")
    audio = to_mono(data)
    check_finite(audio, str(info.path))
    if sample_rate is not None and sample_rate != sr:
        audio = resample(audio, int(sr), sample_rate)
        sr = sample_rate
    return audio, int(sr)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average channels: ``[T, C]`` (or ``[T]``) -> float32 ``[T]``."""
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim == 1:
        return arr
    if arr.ndim != 2:
        raise AudioError(f"expected audio of shape [T] or [T, C], got {list(arr.shape)}")
    return arr.mean(axis=1, dtype=np.float32) if arr.shape[1] > 1 else arr[:, 0].copy()


def check_finite(audio: np.ndarray, what: str = "audio") -> None:
    """Raise :class:`AudioError` when ``audio`` holds NaN or infinite samples."""
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise AudioError(f"{what}: {bad} NaN or infinite samples")


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono float32 ``[T]`` from ``sr_in`` to ``sr_out`` Hz with soxr (VHQ)."""
    if sr_in == sr_out:
        return np.asarray(audio, dtype=np.float32)
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"invalid sample rates {sr_in} -> {sr_out} Hz")
    out = soxr.resample(np.asarray(audio, dtype=np.float32), sr_in, sr_out, quality="VHQ")
    return np.ascontiguousarray(out, dtype=np.float32)


class StreamResampler:
    """Resample mono float32 audio chunk by chunk from ``sr_in`` to ``sr_out`` Hz with soxr; the chunks
    concatenate to one resampled signal.

    ``quality``: ``HQ`` (flat to 0.45 × the lower rate, but soxr releases its output in blocks: nothing for the
    first ~4,000 input samples) or ``LQ`` (output from the first chunk on; at 16 → 44.1 kHz −0.5 dB at 6 kHz,
    −13 dB at 7 kHz: what a live note-on can afford).
    """

    def __init__(self, sr_in: int, sr_out: int, quality: str = "HQ") -> None:
        if sr_in <= 0 or sr_out <= 0:
            raise AudioError(f"invalid sample rates {sr_in} -> {sr_out} Hz")
        if quality not in ("HQ", "LQ"):
            raise AudioError(f"resampling quality must be HQ or LQ, got {quality!r}")
        self.sr_in, self.sr_out = sr_in, sr_out
        self._stream = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality=quality)

    def process(self, chunk: np.ndarray, last: bool = False) -> np.ndarray:
        """The resampled samples ``chunk: float32[T]`` completes (``last`` flushes the filter's tail)."""
        out = self._stream.resample_chunk(np.ascontiguousarray(chunk, dtype=np.float32), last=last)
        return np.asarray(out, dtype=np.float32).reshape(-1)


def change_speed(audio: np.ndarray, ratio: float) -> np.ndarray:
    """Play mono float32 ``[T]`` ``ratio`` times faster (pitch up by ``12 · log2(ratio)`` semitones, length
    ``T / ratio``), as a sampler transposes a sample: soxr (VHQ) resampling from ``ratio · r`` to ``r`` Hz."""
    if not np.isfinite(ratio) or ratio <= 0:
        raise AudioError(f"invalid speed ratio {ratio}")
    if ratio == 1.0:
        return np.asarray(audio, dtype=np.float32)
    base = 48_000.0  # any rate: only the ratio matters
    out = soxr.resample(np.asarray(audio, dtype=np.float32), base * ratio, base, quality="VHQ")
    return np.ascontiguousarray(out, dtype=np.float32)


def write_audio(
    path: str | os.PathLike[str],
    audio: np.ndarray,
    sample_rate: int,
    *,
    subtype: str | None = None,
) -> Path:
    """Write ``audio: float[T]`` or ``[T, C]`` atomically (temporary file, then rename).

    The format follows the extension (``.wav``, ``.flac``, ``.aiff``, ``.ogg``). WAV
    defaults to 32-bit float so levels above 0 dBFS survive; FLAC to 24-bit.
    """
    p = Path(path)
    ext = p.suffix.lower().lstrip(".")
    formats = {"wav": "WAV", "wave": "WAV", "flac": "FLAC", "aif": "AIFF", "aiff": "AIFF", "ogg": "OGG"}
    if ext not in formats:
        raise AudioError(f"{p}: cannot write {p.suffix or '(no extension)'!r}; use .wav, .flac, .aiff or .ogg")
    arr = np.asarray(audio, dtype=np.float32)
    check_finite(arr, str(p))
    fmt = formats[ext]
    if subtype is None:
        subtype = {"WAV": "FLOAT", "FLAC": "PCM_24", "AIFF": "FLOAT", "OGG": "VORBIS"}[fmt]
    with atomic_path(p) as tmp:
        sf.write(tmp, arr, sample_rate, format=fmt, subtype=subtype)
    return p


def _short(exc: BaseException) -> str:
    """First line of an exception message, without libsndfile's noise."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
