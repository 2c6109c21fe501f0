"""The nearest-sample baseline (SPEC §6): play back the training sound whose curves are closest.

A lookup, not a synthesizer: it shows how much of a model's score a sample player with the
same training data already gets. Evaluated on held-out sounds it never returns the test
sound itself, only its closest relative from the training split.

**Distance.** Curves are compared on their first ``match_frames`` frames (64 by default:
0.74 s at 44.1 kHz / hop 512, the body of an impact). Each descriptor is log-scaled
(``log(max(x, floor))`` with the floors of :data:`LOG_FLOORS`: loudness in dB, frequencies
in octaves) and z-normalised with the mean and standard deviation of all stored frames, so
the seven columns weigh the same. Stored sounds shorter than ``match_frames`` are padded
with the descriptors of silence. The distance is the mean squared difference over

* all seven columns on the query's **active** frames (rms within 60 dB of its peak),
* the rms column only on its quieter frames (their spectral descriptors are noise),
* nothing beyond the query's length (those frames are not rendered).

Ties go to the first stored sound. The chosen audio is returned as stored (no gain), cropped
or zero-padded to ``frames * hop`` samples.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from neurorack.audio_io import check_finite
from neurorack.descriptors import N_DESCRIPTORS, DescriptorConfig, loud_frames
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator, check_descriptors

if TYPE_CHECKING:
    from neurorack.corpus import Corpus

#: Audio given directly (``float[T]``) or as a zero-argument loader (e.g. ``Sound.audio``).
AudioSource = np.ndarray | Callable[[], np.ndarray]

#: Floors before the logarithm, per column (rms, zcr, rolloff, flatness, bandwidth, centroid, f0).
LOG_FLOORS: np.ndarray = np.array([1e-5, 1e-4, 10.0, 1e-6, 10.0, 10.0, 10.0])

#: Query frames quieter than this (dB below the query's peak rms) are compared on rms only.
ACTIVE_DB = 60.0

_CACHE_SIZE = 32


class NearestSample(Generator):
    """Nearest-neighbour sample playback over stored descriptor curves.

    Args:
        sounds: ``(audio, curves)`` pairs: ``audio`` is ``float[T]`` at ``config.sample_rate``
            or a zero-argument callable returning it (loaded lazily, a few kept in memory);
            ``curves`` is that sound's ``float[frames, 7]``.
        config: the descriptor analysis of the curves (sample rate, hop).
        match_frames: number of leading frames compared.
        names: optional label per sound (e.g. corpus hashes), reported by :meth:`nearest_name`.

    Raises:
        NeurorackError: no sounds, bad curves or audio, ``match_frames < 1``.
    """

    name = "nearest"

    def __init__(
        self,
        sounds: Sequence[tuple[AudioSource, np.ndarray]],
        config: DescriptorConfig,
        *,
        match_frames: int = 64,
        names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(config)
        if len(sounds) == 0:
            raise NeurorackError("nearest-sample playback needs at least one stored sound")
        if match_frames < 1:
            raise NeurorackError(f"match_frames must be >= 1, got {match_frames}")
        if names is not None and len(names) != len(sounds):
            raise NeurorackError(f"got {len(names)} names for {len(sounds)} sounds")
        self.match_frames = match_frames
        self.names: tuple[str, ...] = tuple(names) if names is not None else tuple(str(i) for i in range(len(sounds)))
        self._sources: list[AudioSource] = []
        features = []
        lengths = []
        for i, (audio, curves) in enumerate(sounds):
            if isinstance(audio, np.ndarray):
                audio = self._check_audio(audio, f"sound {i}")
            elif not callable(audio):
                raise NeurorackError(f"sound {i}: audio must be an array or a loader, got {type(audio).__name__}")
            self._sources.append(audio)
            try:
                c = check_descriptors(curves)
            except NeurorackError as exc:
                raise NeurorackError(f"sound {i}: {exc}") from None
            logs, _ = self._padded_logs(c)
            features.append(logs)
            lengths.append(min(c.shape[0], match_frames))
        raw = np.stack(features)  # [N, match_frames, 7]
        valid = np.arange(match_frames)[None, :] < np.asarray(lengths)[:, None]
        frames = raw[valid]
        self._mean = frames.mean(axis=0)
        self._std = np.maximum(frames.std(axis=0), 1e-3)
        self._features = (raw - self._mean) / self._std
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    @classmethod
    def from_corpus(cls, corpus: Corpus, split: str | None = "train", *, match_frames: int = 64) -> NearestSample:
        """Store every sound of ``corpus`` in ``split`` (``None``: all splits); audio is loaded on demand.

        Raises:
            NeurorackError: the split holds no sound.
        """
        sounds = corpus.sounds(split=split)
        if not sounds:
            where = f"split {split!r}" if split is not None else "any split"
            raise NeurorackError(f"the corpus has no sound in {where} for nearest-sample playback")
        pairs: list[tuple[AudioSource, np.ndarray]] = [(s.audio, s.descriptors()) for s in sounds]
        return cls(pairs, corpus.config, match_frames=match_frames, names=[s.hash for s in sounds])

    def __len__(self) -> int:
        return len(self._sources)

    # -- matching -------------------------------------------------------------------------------
    def _silent_row(self) -> np.ndarray:
        """Descriptors of a silent frame (librosa conventions, SPEC §2)."""
        cfg = self.descriptor_config
        row = np.zeros(N_DESCRIPTORS)
        row[3] = 1.0
        row[6] = cfg.sample_rate / cfg.min_period
        return row

    def _padded_logs(self, curves: np.ndarray) -> tuple[np.ndarray, int]:
        """Log-scaled first ``match_frames`` frames ``[match_frames, 7]``, silence-padded; and the used length."""
        n = min(curves.shape[0], self.match_frames)
        out = np.tile(self._silent_row(), (self.match_frames, 1))
        out[:n] = curves[:n]
        return np.log(np.maximum(out, LOG_FLOORS)), n

    def distances(self, descriptors: np.ndarray) -> np.ndarray:
        """Distance of ``descriptors: float[frames, 7]`` to every stored sound, ``float64[N]`` (see module doc)."""
        curves = check_descriptors(descriptors).astype(np.float64)
        logs, n = self._padded_logs(curves)
        query = (logs - self._mean) / self._std
        active = loud_frames(curves[:n], ACTIVE_DB)
        mask = np.zeros((self.match_frames, N_DESCRIPTORS))
        mask[:n, 0] = 1.0
        mask[:n][active] = 1.0
        diff = (self._features - query[None]) ** 2
        return (diff * mask[None]).sum(axis=(1, 2)) / mask.sum()

    def nearest(self, descriptors: np.ndarray) -> int:
        """Index of the stored sound closest to ``descriptors: float[frames, 7]``."""
        return int(np.argmin(self.distances(descriptors)))

    def nearest_name(self, descriptors: np.ndarray) -> str:
        """Name (corpus hash, or index) of the stored sound closest to ``descriptors``."""
        return self.names[self.nearest(descriptors)]

    # -- playback -------------------------------------------------------------------------------
    @staticmethod
    def _check_audio(audio: np.ndarray, what: str) -> np.ndarray:
        arr = np.asarray(audio, dtype=np.float32)
        if arr.ndim != 1 or arr.size == 0:
            raise NeurorackError(f"{what}: audio must be non-empty mono float[T], got shape {list(arr.shape)}")
        check_finite(arr, what)
        return arr

    def audio(self, index: int) -> np.ndarray:
        """The stored audio of sound ``index``, ``float32[T]`` (loaded and cached when lazy)."""
        source = self._sources[index]
        if isinstance(source, np.ndarray):
            return source
        cached = self._cache.get(index)
        if cached is None:
            cached = self._check_audio(source(), f"sound {self.names[index]}")
            self._cache[index] = cached
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return cached

    def _generate(self, descriptors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n_out = descriptors.shape[0] * self.hop_length
        audio = self.audio(self.nearest(descriptors))[:n_out]
        if audio.shape[0] < n_out:
            audio = np.pad(audio, (0, n_out - audio.shape[0]))
        return audio
