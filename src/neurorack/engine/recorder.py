"""``--record``: the output mix to an audio file, fed from the audio thread through a ring buffer.

The audio thread only copies each block into a preallocated ring (:meth:`Recorder.push`, no
allocation, no lock); a writer thread drains it to a temporary file beside the target every
50 ms, and :meth:`Recorder.close` renames it into place (atomic: an interrupted or failed
recording never leaves a half-written file under the final name).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from neurorack.atomic import atomic_path
from neurorack.errors import NeurorackError

log = logging.getLogger("neurorack.engine.recorder")

#: Extension → (libsndfile format, subtype): 32-bit float WAV/AIFF keep everything, FLAC 24-bit.
FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "FLOAT"),
    "wave": ("WAV", "FLOAT"),
    "flac": ("FLAC", "PCM_24"),
    "aif": ("AIFF", "FLOAT"),
    "aiff": ("AIFF", "FLOAT"),
}


def check_record_path(path: str | os.PathLike[str]) -> Path:
    """Validate a recording destination before the engine starts.

    Raises:
        NeurorackError: unsupported extension, a folder, or a parent that cannot be created.
    """
    p = Path(path)
    ext = p.suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise NeurorackError(f"{p}: cannot record to {p.suffix or '(no extension)'!r}; use .wav, .flac or .aiff")
    if p.is_dir():
        raise NeurorackError(f"{p}: is a folder")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NeurorackError(f"{p}: cannot create its folder ({exc.strerror or exc})") from None
    return p


class Recorder:
    """Record mono float32 blocks at ``sample_rate`` to ``path``.

    Args:
        path: destination (``.wav``, ``.flac`` or ``.aiff``).
        sample_rate: Hz.
        ring_seconds: ring buffer length, s (the writer may fall behind this much).

    Raises:
        NeurorackError: bad destination (see :func:`check_record_path`).
    """

    def __init__(self, path: str | os.PathLike[str], sample_rate: int, ring_seconds: float = 10.0) -> None:
        self.path = check_record_path(path)
        self.sample_rate = int(sample_rate)
        self._ring = np.zeros(max(4096, int(ring_seconds * sample_rate)), dtype=np.float32)
        self._written = 0  # samples pushed by the audio thread (only it writes this)
        self._read = 0  # samples saved by the writer thread
        #: Samples lost because the writer fell more than the ring behind.
        self.dropped = 0
        fmt, subtype = FORMATS[self.path.suffix.lower().lstrip(".")]
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path, suffix=self.path.suffix))
        try:
            self._file: Any = sf.SoundFile(
                str(tmp), mode="w", samplerate=self.sample_rate, channels=1, format=fmt, subtype=subtype
            )
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            self._stack.close()
            raise NeurorackError(f"{self.path}: cannot record ({exc})") from None
        self._stop = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="neurorack-recorder", daemon=True)
        self._thread.start()

    @property
    def seconds(self) -> float:
        """Seconds saved so far."""
        return self._read / self.sample_rate

    def push(self, block: np.ndarray) -> None:
        """Append one block (audio thread; copies into the ring, nothing else)."""
        n = block.shape[0]
        ring = self._ring
        size = ring.shape[0]
        w = self._written
        i = w % size
        first = min(n, size - i)
        ring[i : i + first] = block[:first]
        if first < n:
            ring[: n - first] = block[first:n]
        self._written = w + n

    def _drain(self) -> None:
        w = self._written
        r = self._read
        size = self._ring.shape[0]
        if w - r > size:
            self.dropped += w - r - size
            r = w - size
        while r < w:
            i = r % size
            n = min(w - r, size - i)
            self._file.write(self._ring[i : i + n])
            r += n
        self._read = r

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self._drain()
            except Exception as exc:  # disk full, ...: keep the error for close()
                self._failed = exc
                log.error("recording to %s failed: %s", self.path, exc)
                return

    def close(self) -> Path | None:
        """Stop, save what is left and move the file into place; returns the path (None after a failure).

        Raises:
            NeurorackError: the recording could not be written.
        """
        if self._stop.is_set():
            return self.path
        self._stop.set()
        self._thread.join(timeout=5.0)
        try:
            if self._failed is None:
                self._drain()
            self._file.close()
        except Exception as exc:
            self._failed = self._failed or exc
        if self._failed is not None:
            with contextlib.suppress(Exception):
                self._stack.__exit__(type(self._failed), self._failed, None)
            raise NeurorackError(f"{self.path}: recording failed ({self._failed})")
        self._stack.close()
        if self.dropped:
            log.warning("recording %s: %d samples dropped (disk too slow)", self.path, self.dropped)
        return self.path
